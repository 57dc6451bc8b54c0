package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// daemonGCPercent is the garbage collector's target for `lvsprobe run`
// when GOGC is not set: the heap may grow to 1.35× the live data between
// collections instead of Go's default 2×. The daemon's live heap is
// mostly its topology (about 3 KiB per real server with every part
// running), which never changes, so the headroom it buys is memory held
// for nothing: at 10,000 real servers GOGC 100 let the process reach
// ~100 MiB of RSS, 50 ~64–70 MiB, 35 saves another ~0.15 × the live heap
// (docs/benchmarks.md §8.3, §15). Collection work follows the allocation
// rate divided by this ratio: the SYN prober's signal batches, over half
// of the steady allocation, are recycled since (synprobe/recycle.go), so
// 35 collects about as often as 50 did before. Being a ratio, it stays
// safe for any configuration size, unlike a fixed memory limit, which a
// large configuration would turn into constant collection. GOGC and
// GOMEMLIMIT in the environment still apply as usual.
const daemonGCPercent = 35

// setDaemonGC applies daemonGCPercent unless GOGC is set.
func setDaemonGC(log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(daemonGCPercent)
	log.Debug("garbage collector target", "gogc", daemonGCPercent)
}
