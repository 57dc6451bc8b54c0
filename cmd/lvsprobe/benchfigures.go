package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/prober"
)

// latenessWindowEnv names a duration (Go syntax, "5s"): when set, `lvsprobe
// run` takes a snapshot of the scheduler's lateness histogram and of the
// Go runtime's counters that long after start and, when it stops, also
// logs the lateness of the checks started since then (steady_lateness_*,
// at the histogram's full resolution, about 19 %), and the bytes
// allocated, collections and GC CPU since then (steady_alloc_mib,
// steady_gc_cycles, steady_gc_cpu_seconds). Benchmarks (scripts/bench/scale) set it to
// their warm-up, so the start-up round does not count; it is an
// environment variable, like LVSPROBE_PROFILE_DIR, because it is for
// measurement only.
const latenessWindowEnv = "LVSPROBE_LATENESS_AFTER"

// latenessWindow starts the snapshot latenessWindowEnv asks for. The
// function it returns gives the log attributes of the window at stop
// (none when the variable is unset or invalid, or the snapshot was never
// taken).
func latenessWindow(log *slog.Logger, sched *prober.Scheduler) func() []any {
	v := os.Getenv(latenessWindowEnv)
	if v == "" {
		return func() []any { return nil }
	}
	after, err := time.ParseDuration(v)
	if err != nil || after < 0 {
		log.Warn("ignored: not a duration", "variable", latenessWindowEnv, "value", v)
		return func() []any { return nil }
	}
	var (
		mu    sync.Mutex
		start prober.Lateness
		rt    [3]float64
		taken bool
	)
	t := time.AfterFunc(after, func() {
		l, r := sched.Lateness(), runtimeCounters()
		mu.Lock()
		start, rt, taken = l, r, true
		mu.Unlock()
	})
	return func() []any {
		t.Stop()
		mu.Lock()
		defer mu.Unlock()
		if !taken {
			return nil
		}
		w, r := sched.Lateness().Sub(start), runtimeCounters()
		return []any{"steady_checks", w.Count, "steady_lateness_p50", w.Quantile(0.5),
			"steady_lateness_p99", w.Quantile(0.99), "steady_lateness_max", windowMax(w),
			"steady_alloc_mib", round1((r[0] - rt[0]) / (1 << 20)), "steady_gc_cycles", r[1] - rt[1],
			"steady_gc_cpu_seconds", round1(r[2] - rt[2])}
	}
}

// windowMax is the upper bound of the highest non-empty bucket of w (Max
// of a [prober.Lateness.Sub] is the maximum since start, not the window's).
func windowMax(w prober.Lateness) time.Duration {
	for i := len(w.Buckets) - 1; i >= 0; i-- {
		if w.Buckets[i].Count > 0 {
			return min(w.Buckets[i].UpperBound, w.Max)
		}
	}
	return 0
}

// runtimeCounters reads the bytes allocated since start, the collections
// and the GC's CPU seconds.
func runtimeCounters() [3]float64 {
	s := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
	}
	metrics.Read(s)
	var out [3]float64
	for i, v := range s {
		switch v.Value.Kind() {
		case metrics.KindUint64:
			out[i] = float64(v.Value.Uint64())
		case metrics.KindFloat64:
			out[i] = v.Value.Float64()
		}
	}
	return out
}

// round1 rounds to one decimal.
func round1(f float64) float64 { return math.Round(f*10) / 10 }

// memoryAttrs reads the Go runtime's memory figures for the stop log line:
// the live heap at the last collection, the heap goal, what the runtime
// has mapped in all, goroutine stacks, and the collections and their CPU
// since start.
func memoryAttrs() []any {
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/heap/goal:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/gc/stack/starting-size:bytes"},
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	metrics.Read(s)
	mib := func(v metrics.Value) float64 {
		if v.Kind() != metrics.KindUint64 {
			return 0
		}
		return float64(v.Uint64()) / (1 << 20)
	}
	var gcs uint64
	if s[4].Value.Kind() == metrics.KindUint64 {
		gcs = s[4].Value.Uint64()
	}
	var gcCPU float64
	if s[5].Value.Kind() == metrics.KindFloat64 {
		gcCPU = s[5].Value.Float64()
	}
	r := round1
	return []any{"heap_live_mib", r(mib(s[0].Value)), "heap_goal_mib", r(mib(s[1].Value)),
		"go_mapped_mib", r(mib(s[2].Value)), "stacks_mib", r(mib(s[3].Value)),
		"gc_cycles", gcs, "gc_cpu_seconds", r(gcCPU),
		// Where the arena goes besides live objects: the goroutines'
		// starting stack size (adaptive: the average stack scanned at the
		// last collection), how many there are, dead objects not yet
		// swept plus span slack, and free pages the runtime still holds.
		"stack_start_kib", u64(s[6].Value) / 1024, "goroutines", u64(s[7].Value),
		"heap_objects_mib", r(mib(s[10].Value)), "heap_unused_mib", r(mib(s[8].Value)),
		"heap_free_mib", r(mib(s[9].Value))}
}

// u64 is v as a uint64, 0 when it is not one.
func u64(v metrics.Value) uint64 {
	if v.Kind() != metrics.KindUint64 {
		return 0
	}
	return v.Uint64()
}
