package ipvs

import (
	"context"
	"testing"
)

// BenchmarkResync10k: a converged table of 10 services × 1,000 real
// servers (the scale benchmark's shape); each op is the periodic resync
// pass Run makes every ResyncInterval (Reconcile: read the table, compute
// the desired one, compare, write nothing). With one P (GOMAXPROCS=1, as
// the scale benchmark's isolate rig runs lvsprobe) this pass shares the P
// with the check scheduler (see yield.go); it reports the process's CPU
// time per op (cpu-ns/op).
func BenchmarkResync10k(b *testing.B) {
	cfg := benchConfig(10, 1000, false)
	be := NewDryRun(nil, nil)
	r := NewReconciler(be, cfg, ReconcilerOptions{})
	ctx := context.Background()
	if err := r.Reconcile(ctx); err != nil {
		b.Fatal(err)
	}
	before := r.Stats().Writes()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for range b.N {
		if err := r.Reconcile(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if w := r.Stats().Writes() - before; w != 0 {
		b.Fatalf("%d writes in converged resyncs, want 0", w)
	}
}
