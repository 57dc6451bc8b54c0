package synprobe

import (
	"testing"
	"time"
)

func TestTickFor(t *testing.T) {
	tests := []struct {
		name      string
		targets   int
		interval  time.Duration
		rate      float64 // back-off factor, 0 for 1
		wantTick  time.Duration
		wantLimit int
	}{
		{"none", 0, 100 * time.Millisecond, 0, sendTick, wakeLimit},
		{"100 targets keep the 10 ms tick", 100, 100 * time.Millisecond, 0, sendTick, wakeLimit},
		{"1,000 targets: 100 a tick at 10 ms", 1000, 100 * time.Millisecond, 0, sendTick, wakeLimit},
		{"2,000 targets: 5 ms", 2000, 100 * time.Millisecond, 0, 5 * time.Millisecond, wakeLimit},
		{"3,000 targets: 3 ms (whole ms)", 3000, 100 * time.Millisecond, 0, 3 * time.Millisecond, wakeLimit},
		{"7,000 targets: 1 ms (whole ms)", 7000, 100 * time.Millisecond, 0, time.Millisecond, wakeLimit},
		{"10,000 targets: 1 ms", 10000, 100 * time.Millisecond, 0, time.Millisecond, wakeLimit},
		{"10,000 targets backed off to 1/16: 10 ms", 10000, 100 * time.Millisecond, 1.0 / 16, sendTick, wakeLimit},
		{"10,000 targets backed off to 1/4: 4 ms", 10000, 100 * time.Millisecond, 0.25, 4 * time.Millisecond, wakeLimit},
		{"20,000 targets: 1 ms at most, the limit grows with the rate", 20000, 100 * time.Millisecond, 0, minTick, 256},
		{"10,000 targets every second: 10 ms", 10000, time.Second, 0, sendTick, wakeLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := float64(tc.targets) * probeRate(uint64(tc.interval))
			if tc.rate > 0 {
				r *= tc.rate
			}
			tick, limit := tickFor(r)
			if d := tick - tc.wantTick; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("tick %v, want %v", tick, tc.wantTick)
			}
			if limit != tc.wantLimit {
				t.Errorf("limit %d, want %d", limit, tc.wantLimit)
			}
			// Whatever the rate, a wakeup's probes fit in its limit
			// with room to catch up, and the tick is within bounds.
			if perTick := r * tick.Seconds(); perTick > float64(limit) {
				t.Errorf("%.0f probes due a tick, over the limit %d", perTick, limit)
			}
			if tick < minTick || tick > sendTick {
				t.Errorf("tick %v outside [%v, %v]", tick, minTick, sendTick)
			}
			// Catching up after a late wakeup, a backlog drains at least
			// twice as fast as probes fall due.
			if back := float64(limit) / catchUpWait(tick).Seconds(); back < 2*r {
				t.Errorf("backlog drains at %.0f/s, under twice the rate %.0f/s", back, r)
			}
		})
	}
}

func TestProbeRateZero(t *testing.T) {
	if r := probeRate(0); r != 0 {
		t.Fatalf("probeRate(0) = %v", r)
	}
}

func TestNewLateness(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name       string
		draining   bool
		late, prev time.Duration
		want       time.Duration
	}{
		{"on time", false, 0, 0, 0},
		{"a late wakeup counts", false, 80 * ms, 0, 80 * ms},
		{"a late wakeup after a late one counts", false, 80 * ms, 90 * ms, 80 * ms},
		{"a backlog draining: shrinking lateness is not new", true, 70 * ms, 80 * ms, 0},
		{"a backlog draining at the same lateness is not new", true, 80 * ms, 80 * ms, 0},
		{"a growing backlog counts", true, 95 * ms, 80 * ms, 95 * ms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := newLateness(tc.draining, tc.late, tc.prev); got != tc.want {
				t.Fatalf("newLateness(%v, %v, %v) = %v, want %v", tc.draining, tc.late, tc.prev, got, tc.want)
			}
		})
	}
}
