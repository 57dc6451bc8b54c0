package loader

import (
	"math/bits"
	"os"
	"unsafe"
)

// AnswerRecordBytes is what one answer takes in the SYN-probe receiver's
// ring buffer: the kernel's 8-byte record header and struct
// synprobe_answer, rounded up to 8 (RECORD_SPAN in bpf/synprobe.c).
const AnswerRecordBytes = (8 + int(unsafe.Sizeof(synprobeSynprobeAnswer{})) + 7) / 8 * 8

// Bounds of the ring buffer [SynProbeOptions.RingBytes] may ask for. The
// kernel maps a ring buffer twice (so a record that wraps reads as one),
// and the producer touches every page of it once it has wrapped: the
// ring's size counts twice in the daemon's resident memory.
const (
	MinRingBytes = 64 << 10
	MaxRingBytes = 4 << 20 // what bpf/synprobe.c declares
)

// RingBytesFor returns the ring buffer size, in bytes, that holds at
// least records answers: a power of two and a multiple of the page
// size, as the kernel requires, within [MinRingBytes, MaxRingBytes].
func RingBytesFor(records int) int {
	n := max(records, 1) * AnswerRecordBytes
	n = max(n, MinRingBytes, os.Getpagesize())
	if n > MaxRingBytes {
		return MaxRingBytes
	}
	return 1 << bits.Len(uint(n-1))
}

// RingBytes returns the size of the loaded answers' ring buffer.
func (s *SynProbe) RingBytes() int { return int(s.objs.Answers.MaxEntries()) }
