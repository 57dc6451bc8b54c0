package loader

import (
	"errors"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

func TestRingBytesFor(t *testing.T) {
	if AnswerRecordBytes != 128 {
		t.Fatalf("AnswerRecordBytes = %d, want 128 (8-byte header + 120-byte struct synprobe_answer)", AnswerRecordBytes)
	}
	for _, tt := range []struct {
		records, want int
	}{
		{0, MinRingBytes},
		{1, MinRingBytes},
		{MinRingBytes / AnswerRecordBytes, MinRingBytes},
		{1500, 256 << 10}, // 192,000 bytes
		{3000, 512 << 10}, // the daemon's default: 200,000 probes/s × 15 ms
		{4096, 512 << 10}, // exactly
		{4097, 1 << 20},   // one more does not fit
		{1 << 30, MaxRingBytes},
	} {
		if got := RingBytesFor(tt.records); got != tt.want {
			t.Errorf("RingBytesFor(%d) = %d, want %d", tt.records, got, tt.want)
		}
	}
}

// TestSynProbeRingSized: the kernel's ring buffer is the size the
// options ask for, and the program's own 4 MiB without.
func TestSynProbeRingSized(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tt := range []struct {
		records, want int
	}{
		{0, MaxRingBytes},
		{3000, 512 << 10},
		{1, MinRingBytes},
	} {
		s, err := LoadSynProbe(SynProbeOptions{PortLo: 40000, PortHi: 40999, RingRecords: tt.records})
		if errors.Is(err, ErrNotSupported) {
			testenv.SkipOrFail(t, "eBPF not available: "+err.Error())
		}
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		if got := s.RingBytes(); got != tt.want {
			t.Errorf("RingRecords %d: ring buffer of %d bytes, want %d", tt.records, got, tt.want)
		}
		s.Close()
	}
}
