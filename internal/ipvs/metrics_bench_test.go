package ipvs

import (
	"context"
	"io"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsprobe/lvsprobe/internal/metricfam"
)

// BenchmarkScrape10k measures one scrape of the reconciler's collector
// with 100 virtual servers of 100 real servers (20,000 per-destination
// series), the work a Prometheus scrape adds while the reconciler's lock
// is held for part of it: "const" with the per-destination families as
// const metrics through the registry (before DirectGatherer), "direct"
// with them built by DirectGatherer's Gatherer beside the registry (what
// the daemon serves). It reports the process's CPU time per scrape
// (cpu-ms/op), which other work on the machine does not inflate the way
// it does wall time, and the heap the collector keeps between scrapes
// (kept-MB: the direct gatherer's label cache).
func BenchmarkScrape10k(b *testing.B) {
	r := NewReconciler(NewDryRun(nil, io.Discard), benchConfig(100, 100, false), ReconcilerOptions{})
	if err := r.Reconcile(context.Background()); err != nil {
		b.Fatal(err)
	}
	for _, direct := range []bool{false, true} {
		name := "const"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			reg := prometheus.NewRegistry()
			c := NewCollector(r)
			reg.MustRegister(c)
			var g prometheus.Gatherer = reg
			if direct {
				g = metricfam.NewMerged(reg, c.DirectGatherer())
			}
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				mfs, err := g.Gather()
				if err != nil {
					b.Fatal(err)
				}
				if len(mfs) == 0 {
					b.Fatal("nothing gathered")
				}
			}
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
			runtime.GC()
			runtime.ReadMemStats(&m1)
			runtime.KeepAlive(g)
			b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/1e6, "kept-MB")
		})
	}
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
