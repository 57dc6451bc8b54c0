package loader

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// benchTargets is the number of distinct answering targets in the
// delivery benchmarks (the 10,000-target case of issue 5).
const benchTargets = 10000

// targetFrames returns one SYN-ACK frame per target, each from its own
// address in 198.18.0.0/15.
func targetFrames(n int) [][]byte {
	fs := make([][]byte, n)
	for i := range fs {
		f := frame(40000+uint16(i%1000), 0x12, uint32(i))
		binary.BigEndian.PutUint16(f[14+12+2:], uint16(i+2)) // last two octets of the source
		fs[i] = f
	}
	return fs
}

// BenchmarkDelivery compares the two ways the receiver hands answers to
// Go, per answer, end to end: the program runs (BPF_PROG_TEST_RUN, the
// same cost for both) and Go consumes what it recorded.
//
//	ringbuf: a reader goroutine decodes every record as it arrives;
//	map:     after every round of one answer per target, Go reads the
//	         whole per-target map in batches and picks the changed entries.
//
// kernel-ns/answer is the program alone, measured by the kernel;
// baseline is the cost of a run that records nothing.
func BenchmarkDelivery(b *testing.B) {
	frames := targetFrames(benchTargets)
	// baseline: the same runs on packets the program lets pass without
	// recording (port outside the range): subtract it from the others.
	b.Run("baseline", func(b *testing.B) {
		s := mustLoad(b, RingBuffer)
		others := targetFrames(benchTargets)
		for _, f := range others {
			binary.BigEndian.PutUint16(f[14+20+2:], 50000)
		}
		_, kns := kernelCost(b, s.Program(), others[0])
		cpu0 := cpuTime(b)
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.Program().Run(&ebpf.RunOptions{Data: others[i%len(others)]}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/answer")
		b.ReportMetric(kns, "kernel-ns/answer")
	})
	b.Run("ringbuf", func(b *testing.B) {
		s := mustLoad(b, RingBuffer)
		var got, want atomic.Int64
		reached := make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go s.ReadAnswers(ctx, func(a *Answer) {
			if len(a.Packet) >= 40 && got.Add(1) == want.Load() {
				select {
				case reached <- struct{}{}:
				default:
				}
			}
		}, nil)
		await := func(n int64) {
			select {
			case <-reached: // a stale token
			default:
			}
			want.Store(n)
			if got.Load() >= n {
				return
			}
			select {
			case <-reached:
			case <-time.After(10 * time.Second):
				st, _ := s.Stats()
				b.Fatalf("read %d of %d answers (kernel %+v)", got.Load(), want.Load(), st)
			}
		}
		_, kns := kernelCost(b, s.Program(), frames[0])
		await(1000)
		cpu0 := cpuTime(b)
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.Program().Run(&ebpf.RunOptions{Data: frames[i%len(frames)]}); err != nil {
				b.Fatal(err)
			}
		}
		await(1000 + int64(b.N))
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/answer")
		b.ReportMetric(kns, "kernel-ns/answer")
	})
	b.Run("map", func(b *testing.B) {
		s := mustLoad(b, TargetMap)
		_, kns := kernelCost(b, s.Program(), frames[0])
		seen := map[uint32]uint64{}
		var buf []LastAnswer
		changed := 0
		read := func() {
			var err error
			buf, err = s.ReadLast(buf[:0])
			if err != nil {
				b.Fatal(err)
			}
			for _, e := range buf {
				k := binary.BigEndian.Uint32(e.Target.Addr().AsSlice())
				if seen[k] != e.SynAckNs {
					seen[k] = e.SynAckNs
					changed++
				}
			}
		}
		cpu0 := cpuTime(b)
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.Program().Run(&ebpf.RunOptions{Data: frames[i%len(frames)]}); err != nil {
				b.Fatal(err)
			}
			if (i+1)%len(frames) == 0 {
				read()
			}
		}
		read()
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/answer")
		b.ReportMetric(kns, "kernel-ns/answer")
		if changed != min(b.N, len(frames)) && changed < len(frames) {
			b.Fatalf("saw %d changed targets after %d answers", changed, b.N)
		}
	})
}

// kernelCost runs the program 1000 times on f and returns the kernel's
// measure of one run, in ns.
func kernelCost(b *testing.B, prog *ebpf.Program, f []byte) (uint32, float64) {
	ret, d, err := prog.Benchmark(f, 1000, nil)
	if err != nil {
		b.Fatal(err)
	}
	return ret, float64(d.Nanoseconds())
}

// cpuTime is the process's user+system CPU time so far, in ns.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
