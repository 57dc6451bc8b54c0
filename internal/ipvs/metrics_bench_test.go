package ipvs

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkScrape10k measures one scrape of the reconciler's collector
// with 100 virtual servers of 100 real servers (20,000 per-destination
// series), the work a Prometheus scrape adds while the reconciler's lock
// is held for part of it. It reports the process's CPU time per scrape
// (cpu-ms/op), which other work on the machine does not inflate the way
// it does wall time.
func BenchmarkScrape10k(b *testing.B) {
	r := NewReconciler(NewDryRun(nil, io.Discard), benchConfig(100, 100, false), ReconcilerOptions{})
	if err := r.Reconcile(context.Background()); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(r))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		if len(mfs) == 0 {
			b.Fatal("nothing gathered")
		}
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
