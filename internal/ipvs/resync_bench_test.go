package ipvs

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkResync10k: a converged table of 10 services × 1,000 real
// servers (the scale benchmark's shape); each op is the periodic resync
// pass Run makes every ResyncInterval (Reconcile: read the table, compute
// the desired one, compare, write nothing). With one P (GOMAXPROCS=1, as
// the scale benchmark's isolate rig runs lvsprobe) this pass shares the P
// with the check scheduler (see yield.go); it reports the process's CPU
// time per op (cpu-ns/op) and the longest stretch between two yields of
// the P, or from a pass's start or to its end (max-stretch-ns): how long
// a check due meanwhile can wait on one P.
func BenchmarkResync10k(b *testing.B) {
	r, _ := convergedDryRun(b, 10, 1000)
	ctx := context.Background()
	var last time.Time
	var stretch time.Duration
	mark := func() {
		now := time.Now()
		stretch = max(stretch, now.Sub(last))
		last = now
	}
	r.yield = func() { mark(); runtime.Gosched(); last = time.Now() }
	before := r.Stats().Writes()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for range b.N {
		last = time.Now()
		if err := r.Reconcile(ctx); err != nil {
			b.Fatal(err)
		}
		mark()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(stretch), "max-stretch-ns")
	if w := r.Stats().Writes() - before; w != 0 {
		b.Fatalf("%d writes in converged resyncs, want 0", w)
	}
}
