package ipvs

import (
	"context"
	"testing"
)

// BenchmarkOneHealthChange10k: a converged table of 10 services × 1,000
// real servers (10,000, the detection benchmark's shape); each op is one
// real server going down or coming back and the pass Run makes for it
// (Apply, from the cached table). This is the reconciler's share of a
// detection's latency: what follows the "real server down" log line
// before the IPVS write. Writes must be exactly one per op. It reports
// the process's CPU time per op (cpu-ns/op, garbage collection included),
// which other work on the machine inflates less than ns/op.
func BenchmarkOneHealthChange10k(b *testing.B) {
	r, cfg := convergedDryRun(b, 10, 1000)
	ctx := context.Background()
	vs, rs := cfg.VirtualServers[3], cfg.VirtualServers[3].RealServers[500]
	key := rs.Key(vs)
	before := r.Stats().Writes()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := range b.N {
		r.SetHealth(key, i%2 == 1)
		if err := r.Apply(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if w := r.Stats().Writes() - before; w != uint64(b.N) {
		b.Fatalf("%d writes for %d changes, want one each", w, b.N)
	}
}
