package loader

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// AnswerReader drains the SYN-probe receiver's ring buffer without ever
// blocking, for a caller that reads on its own tick (the SYN prober's send
// loop drains it each time it wakes, so answers cost no wakeup of their
// own). Create it with [SynProbe.NewAnswerReader]. It is not safe for
// concurrent use.
type AnswerReader struct {
	rd  *ringbuf.Reader
	rec ringbuf.Record
	a   Answer
}

// NewAnswerReader opens a non-blocking reader of the ring buffer. Only one
// reader (this or [SynProbe.ReadAnswers]) may read at a time.
func (s *SynProbe) NewAnswerReader() (*AnswerReader, error) {
	if s.opts.Delivery != RingBuffer {
		return nil, fmt.Errorf("read answers: delivery is %s", s.opts.Delivery)
	}
	rd, err := ringbuf.NewReader(s.objs.Answers)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	// A deadline in the past: a read that finds the ring empty returns
	// at once instead of waiting for the program's wake-up.
	rd.SetDeadline(time.Unix(0, 1))
	return &AnswerReader{rd: rd}, nil
}

// Drain passes every answer in the ring to fn (on the calling goroutine;
// fn must not keep Packet) and returns a [Ktime] such that every answer
// that reached the program before it has been passed. With nothing
// pending it makes no system call.
func (r *AnswerReader) Drain(fn func(*Answer)) (upToNs uint64, err error) {
	// A record is reserved (the producer position moves) before the
	// program stamps it, so every answer stamped before upTo is counted
	// in AvailableBytes; a reserved record not yet committed is waited
	// for by ReadInto.
	upTo := Ktime()
	if r.rd.AvailableBytes() == 0 {
		return upTo, nil
	}
	for {
		err := r.rd.ReadInto(&r.rec)
		switch {
		case err == nil:
			if decodeAnswer(r.rec.RawSample, &r.a) {
				fn(&r.a)
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			return upTo, nil
		case errors.Is(err, ringbuf.ErrClosed):
			return upTo, ErrClosed
		default:
			return upTo, fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// Close releases the reader.
func (r *AnswerReader) Close() error { return r.rd.Close() }
