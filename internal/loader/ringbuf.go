package loader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// Answer is one ring-buffer record: a packet that looked like an answer to
// a probe, from its network header on.
type Answer struct {
	KtimeNs uint64 // CLOCK_MONOTONIC at TC ingress, in nanoseconds
	WireLen int    // the packet's length from the network header on
	Family  int    // 4 or 6
	Packet  []byte // the first bytes of the packet (valid only during the callback)
}

// answerHeader is the size of the fixed part of struct synprobe_answer.
const answerHeader = 16

// ReadAnswers calls fn for every record of the ring buffer until ctx is
// done, and returns ctx's error then. fn runs on the calling goroutine and
// must not keep Packet. It batches: the program wakes it when 512 records
// are pending, and it drains the ring at least every PollInterval
// otherwise, so an answer reaches fn at most about PollInterval late (its
// KtimeNs is taken in the kernel, so RTTs do not suffer). After each full
// drain it calls drained (when not nil) with a [Ktime] such that every
// answer that reached the program before it has been passed to fn. Only
// one ReadAnswers may run at a time.
func (s *SynProbe) ReadAnswers(ctx context.Context, fn func(*Answer), drained func(upToNs uint64)) error {
	if s.opts.Delivery != RingBuffer {
		return fmt.Errorf("read answers: delivery is %s", s.opts.Delivery)
	}
	rd, err := ringbuf.NewReader(s.objs.Answers)
	if err != nil {
		return fmt.Errorf("open ring buffer: %w", err)
	}
	defer rd.Close()
	stop := context.AfterFunc(ctx, func() { rd.Close() })
	defer stop()
	var rec ringbuf.Record
	var a Answer
	deadline := time.Now().Add(s.poll)
	rd.SetDeadline(deadline)
	for {
		// A call that returns ErrDeadlineExceeded has drained the
		// ring: everything that reached it before the call started
		// has been read.
		start := time.Now()
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			if decodeAnswer(rec.RawSample, &a) {
				fn(&a)
			}
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if drained != nil {
				drained(ktimeAt(start))
			}
			deadline = time.Now().Add(s.poll)
			rd.SetDeadline(deadline)
		case errors.Is(err, ringbuf.ErrClosed):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrClosed
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// decodeAnswer fills a from a raw ring-buffer record.
func decodeAnswer(raw []byte, a *Answer) bool {
	if len(raw) < answerHeader {
		return false
	}
	a.KtimeNs = binary.NativeEndian.Uint64(raw[0:])
	a.WireLen = int(binary.NativeEndian.Uint32(raw[8:]))
	n := int(binary.NativeEndian.Uint16(raw[12:]))
	a.Family = int(binary.NativeEndian.Uint16(raw[14:]))
	if n > len(raw)-answerHeader {
		n = len(raw) - answerHeader
	}
	a.Packet = raw[answerHeader : answerHeader+n]
	return true
}
