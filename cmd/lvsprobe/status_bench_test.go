package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/prober"
)

// BenchmarkStatus10k measures answering one `lvsprobe status` with 100
// virtual servers of 100 TCP_CHECK real servers: building the document
// and encoding it. It reports CPU time (cpu-ms/op, the process's user
// and system time, which other work on the machine does not inflate)
// and the document's size.
func BenchmarkStatus10k(b *testing.B) {
	var conf strings.Builder
	for v := range 100 {
		fmt.Fprintf(&conf, "virtual_server 198.18.%d.%d 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", 200+v/250, 1+v%250)
		for r := range 100 {
			fmt.Fprintf(&conf, "  real_server 198.19.%d.%d 80 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", r, 1+v)
		}
		conf.WriteString("}\n")
	}
	path := filepath.Join(b.TempDir(), "keepalived.conf")
	writeFile(b, path, conf.String())
	log := slog.New(slog.DiscardHandler)
	cfg, err := loadRunConfig(log, runFlags{file: path})
	if err != nil {
		b.Fatal(err)
	}
	sched, err := prober.NewScheduler(cfg, prober.SchedulerOptions{Log: log})
	if err != nil {
		b.Fatal(err)
	}
	rec := ipvs.NewReconciler(ipvs.NewDryRun(log, io.Discard), cfg, ipvs.ReconcilerOptions{Log: log})
	if err := rec.Reconcile(context.Background()); err != nil {
		b.Fatal(err)
	}
	in := statusInput{file: path, cfg: cfg, loadedAt: time.Now(), sched: sched, rec: rec}
	var size int
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		d := buildStatus(in)
		out, err := json.Marshal(d)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(size)/1e6, "MB/doc")
}

// processCPU returns the CPU time (user and system) the process used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
