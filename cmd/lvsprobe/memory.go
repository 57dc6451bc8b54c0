package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// daemonGCPercent is the garbage collector's target for `lvsprobe run`
// when GOGC is not set: the heap may grow to 1.5× the live data between
// collections instead of Go's default 2×. The daemon's live heap is
// mostly its topology (about 3.5 KiB per real server with every part
// running); at 10,000 real servers the default let the heap peak near
// 75 MiB and the process near 100 MiB of RSS, this keeps it near 64 MiB
// for a few percent more GC CPU (docs/benchmarks.md §7). Being a ratio,
// it stays safe for any configuration size, unlike a fixed memory limit,
// which a large configuration would turn into constant collection.
// GOGC and GOMEMLIMIT in the environment still apply as usual.
const daemonGCPercent = 50

// setDaemonGC applies daemonGCPercent unless GOGC is set.
func setDaemonGC(log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(daemonGCPercent)
	log.Debug("garbage collector target", "gogc", daemonGCPercent)
}
