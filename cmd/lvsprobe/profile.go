package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

// profileEnv names a directory: when set, `lvsprobe run` writes a CPU
// profile of its whole run (cpu.pprof) and, when it is told to stop and
// before it tears anything down, a heap profile (heap.pprof: live and
// allocated since start) and the goroutines (goroutine.pprof) there, for
// `go tool pprof`. It is meant for benchmarks (scripts/bench/scale), so it
// is an environment variable rather than a flag.
const profileEnv = "LVSPROBE_PROFILE_DIR"

// startProfiles starts the profiles profileEnv asks for: the heap profile
// is written once ctx is done, the CPU profile by the function it returns
// (which also writes the heap profile if ctx never ended). It does nothing
// when profileEnv is unset. Failures are logged: a profile is never a
// reason not to run.
func startProfiles(ctx context.Context, log *slog.Logger) (stop func()) {
	dir := os.Getenv(profileEnv)
	if dir == "" {
		return func() {}
	}
	log = log.With("component", "profile", "dir", dir)
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		log.Warn("no CPU profile", "error", err)
	} else if err := pprof.StartCPUProfile(cpu); err != nil {
		log.Warn("no CPU profile", "error", err)
		cpu.Close()
		cpu = nil
	}
	heapDone := make(chan struct{})
	stopHeap := context.AfterFunc(ctx, func() {
		defer close(heapDone)
		writeHeapProfile(log, dir)
	})
	return func() {
		if stopHeap() {
			writeHeapProfile(log, dir)
		} else {
			<-heapDone
		}
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				log.Warn("write CPU profile", "error", err)
			}
		}
		log.Info("profiles written")
	}
}

// writeHeapProfile writes dir/goroutine.pprof and dir/heap.pprof.
func writeHeapProfile(log *slog.Logger, dir string) {
	if g, err := os.Create(filepath.Join(dir, "goroutine.pprof")); err != nil {
		log.Warn("no goroutine profile", "error", err)
	} else {
		if err := pprof.Lookup("goroutine").WriteTo(g, 0); err != nil {
			log.Warn("write goroutine profile", "error", err)
		}
		g.Close()
	}
	f, err := os.Create(filepath.Join(dir, "heap.pprof"))
	if err != nil {
		log.Warn("no heap profile", "error", err)
		return
	}
	defer f.Close()
	runtime.GC() // the live heap as of now
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		log.Warn("write heap profile", "error", err)
	}
}
