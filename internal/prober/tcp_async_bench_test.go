package prober

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// BenchmarkTCPCheckAsync is BenchmarkTCPCheck through the asynchronous
// path (connect_async.go), one attempt at a time: started by the
// benchmark's goroutine, finished by the connector's loop.
func BenchmarkTCPCheckAsync(b *testing.B) {
	addr := benchTarget(b, false)
	ck := mustChecker(b, checkerFor(config.TCPCheck, addr, time.Second), CheckerOptions{}).(*tcpChecker)
	done := make(chan Result, 1)
	g := newAsyncGroup(b.Context(), func(_ attemptRef, res Result, _ time.Time) { done <- res })
	benchCPU(b, func() {
		ck.checkAsync(g, attemptRef{start: time.Now()})
		if res := <-done; !res.OK {
			b.Fatal(res.Message)
		}
	})
}

// BenchmarkTCPCheckInFlight keeps 32 TCP_CHECK attempts in flight, the
// way the scheduler runs them (a dispatching goroutine starts each as a
// slot frees): "goroutine" is one goroutine per attempt calling Check,
// "async" the asynchronous path. connect_timeout is 5 s: on a loaded
// machine nginx's accept queue overflows now and then, and a dropped SYN
// is retransmitted after 1 s. Failed attempts are reported (failed/op)
// and fail the benchmark past 1 %.
func BenchmarkTCPCheckInFlight(b *testing.B) {
	const inFlight = 32
	addr := benchTarget(b, false)
	ck := mustChecker(b, checkerFor(config.TCPCheck, addr, 5*time.Second), CheckerOptions{}).(*tcpChecker)
	var failed atomic.Int64
	report := func(b *testing.B) {
		f := failed.Swap(0)
		b.ReportMetric(float64(f)/float64(b.N), "failed/op")
		if f*100 > int64(b.N) {
			b.Errorf("%d of %d attempts failed", f, b.N)
		}
	}
	b.Run("goroutine", func(b *testing.B) {
		slots := make(chan struct{}, inFlight)
		benchCPU(b, func() {
			slots <- struct{}{}
			go func() {
				if res := ck.Check(context.Background()); !res.OK {
					failed.Add(1)
				}
				<-slots
			}()
		})
		for range inFlight {
			slots <- struct{}{}
		}
		report(b)
	})
	b.Run("async", func(b *testing.B) {
		slots := make(chan struct{}, inFlight)
		g := newAsyncGroup(b.Context(), func(_ attemptRef, res Result, _ time.Time) {
			if !res.OK {
				failed.Add(1)
			}
			<-slots
		})
		benchCPU(b, func() {
			slots <- struct{}{}
			ck.checkAsync(g, attemptRef{start: time.Now()})
		})
		for range inFlight {
			slots <- struct{}{}
		}
		report(b)
	})
}

// benchCPU runs op b.N times and reports the process CPU per op (and the
// director end's NAPI thread's, as benchCheck does).
func benchCPU(b *testing.B, op func()) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	start := checkerCPUTime(b)
	var napi0 time.Duration
	if benchRS != nil {
		napi0, _ = benchRS.NAPICPU(b)
	}
	for b.Loop() {
		op()
	}
	b.ReportMetric(float64(checkerCPUTime(b)-start)/float64(b.N), "cpu-ns/op")
	if benchRS != nil {
		napi1, _ := benchRS.NAPICPU(b)
		b.ReportMetric(float64(napi1-napi0)/float64(b.N), "napi-cpu-ns/op")
	}
}
