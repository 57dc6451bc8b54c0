package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

// TestDaemonGC: without GOGC, the daemon's collector target is
// daemonGCPercent, at most 35 (50 held ~0.15 × the live heap more at
// 10,000 real servers); GOGC in the environment wins.
func TestDaemonGC(t *testing.T) {
	if daemonGCPercent > 35 {
		t.Errorf("daemonGCPercent %d: the heap goal grows back by %d%% of the live heap", daemonGCPercent, daemonGCPercent-35)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		gogc string
		want int
	}{
		{"", daemonGCPercent},
		{"80", 80},
	} {
		prev := debug.SetGCPercent(80)
		t.Setenv("GOGC", tt.gogc)
		setDaemonGC(log)
		if got := debug.SetGCPercent(prev); got != tt.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tt.gogc, got, tt.want)
		}
	}
}
