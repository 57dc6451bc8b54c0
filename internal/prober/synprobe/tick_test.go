package synprobe

import (
	"hash/maphash"
	"net/netip"
	"testing"
	"time"
)

func TestTickFor(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name      string
		targets   int
		interval  time.Duration
		rate      float64 // back-off factor, 0 for 1
		wantTick  time.Duration
		wantLimit int
	}{
		{"none", 0, 100 * ms, 0, sendTick, wakeLimit},
		{"100 targets at 80 ms: a 40 ms grid (half the interval)", 100, 80 * ms, 0, 40 * ms, wakeLimit},
		{"100 targets at 100 ms: a 50 ms grid", 100, 100 * ms, 0, 50 * ms, wakeLimit},
		{"300 targets at 80 ms: 20 ms (26 does not divide 80)", 300, 80 * ms, 0, 20 * ms, wakeLimit},
		{"500 targets at 80 ms: 16 ms", 500, 80 * ms, 0, 16 * ms, wakeLimit},
		{"700 targets at 80 ms: no divisor above 10 ms under 11.4", 700, 80 * ms, 0, sendTick, wakeLimit},
		{"100 targets at 75 ms: 25 ms", 100, 75 * ms, 0, 25 * ms, wakeLimit},
		{"100 targets at 83 ms: no divisor, 10 ms", 100, 83 * ms, 0, sendTick, wakeLimit},
		{"100 targets at 80.5 ms: not whole ms, 10 ms", 100, 80*ms + ms/2, 0, sendTick, wakeLimit},
		{"100 targets every second: at most maxGridTick", 100, time.Second, 0, maxGridTick, wakeLimit},
		{"10 targets at 20 ms: half the interval, 10 ms", 10, 20 * ms, 0, sendTick, wakeLimit},
		{"1,000 targets: 100 a tick at 10 ms", 1000, 100 * ms, 0, sendTick, wakeLimit},
		{"1,000 targets at 80 ms: 8 ms", 1000, 80 * ms, 0, 8 * ms, wakeLimit},
		{"2,000 targets: 5 ms", 2000, 100 * ms, 0, 5 * ms, wakeLimit},
		{"3,000 targets: 3 ms (whole ms)", 3000, 100 * ms, 0, 3 * ms, wakeLimit},
		{"7,000 targets: 1 ms (whole ms)", 7000, 100 * ms, 0, ms, wakeLimit},
		{"10,000 targets: 1 ms", 10000, 100 * ms, 0, ms, wakeLimit},
		{"10,000 targets backed off to 1/16: 10 ms", 10000, 100 * ms, 1.0 / 16, sendTick, wakeLimit},
		{"10,000 targets backed off to 1/4: 4 ms", 10000, 100 * ms, 0.25, 4 * ms, wakeLimit},
		{"20,000 targets: 1 ms at most, the limit grows with the rate", 20000, 100 * ms, 0, minTick, 256},
		{"10,000 targets every second: 10 ms", 10000, time.Second, 0, sendTick, wakeLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := float64(tc.targets) * probeRate(uint64(tc.interval))
			if tc.rate > 0 {
				r *= tc.rate
			}
			tick, limit := tickFor(r, tc.interval)
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
			if tick < minTick || tick > maxGridTick {
				t.Errorf("tick %v outside [%v, %v]", tick, minTick, maxGridTick)
			}
			// A grid tick divides the interval and is at most half of it.
			if gridded(tick) && (tc.interval%tick != 0 || 2*tick > tc.interval) {
				t.Errorf("grid tick %v does not divide the interval %v in two or more", tick, tc.interval)
			}
			// The back-off forgives an answer the grid's longer wait, no more.
			if slack := gridSlack(tick); (gridded(tick) && slack != tick-sendTick) || (!gridded(tick) && slack != 0) {
				t.Errorf("gridSlack(%v) = %v", tick, slack)
			}
			// Catching up after a late wakeup, a backlog drains at least
			// twice as fast as probes fall due.
			if back := float64(limit) / catchUpWait(tick).Seconds(); back < 2*r {
				t.Errorf("backlog drains at %.0f/s, under twice the rate %.0f/s", back, r)
			}
		})
	}
}

// TestGridSchedule drives the real collect on a small prober's grid (100
// targets at 80 ms, phases as Add staggers them, a clock that wakes where
// the send loop would): every probe leaves before it is due and at most a
// tick early, each target's probes leave exactly an interval apart, and
// the loop wakes twice an interval, not eight times as at the 10 ms tick.
func TestGridSchedule(t *testing.T) {
	const (
		targets  = 100
		interval = uint64(80 * time.Millisecond)
		rounds   = 40
	)
	p := newBareProber(t)
	local := netip.MustParseAddr("198.18.0.1")
	start := uint64(1_000_000) * uint64(time.Millisecond) // an arbitrary ktime, not on the grid
	for i := range targets {
		addr := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), uint16(20000+i))
		h := maphash.Comparable(maphash.MakeSeed(), addr)
		tg := &target{addr: addr, path: &path{local: local}, interval: interval, next: start + (h>>32)%interval}
		p.targets[addr] = tg
		p.intervals.add(interval)
		p.nominal += probeRate(interval)
		p.dueAdd(tg)
	}
	tick, limit := tickFor(p.nominal, p.intervals.shortest())
	if tick != 40*time.Millisecond {
		t.Fatalf("tick %v at %d targets every 80 ms, want the 40 ms grid", tick, targets)
	}
	sentAt := map[*target][]uint64{}
	dueAt := map[*target][]uint64{}
	var bs batches
	bs.init(targets, targets)
	wakeups := 0
	now := start
	end := start + rounds*interval
	for now < end {
		due := map[*target]uint64{}
		for _, tg := range p.targets {
			due[tg] = tg.next
		}
		p.collect(now, horizonFor(now, tick), &bs, limit)
		if bs.len() > 0 {
			wakeups++
		}
		for _, pr := range bs.v4 {
			sentAt[pr.t] = append(sentAt[pr.t], now)
			dueAt[pr.t] = append(dueAt[pr.t], due[pr.t])
		}
		next := p.due.peek().next
		now = max(wakeFor(next, tick), now+1)
	}
	for tg, ss := range sentAt {
		for i, s := range ss {
			if d := dueAt[tg][i]; s > d || d-s >= uint64(tick) {
				t.Fatalf("%v: probe %d left at %d, due at %d: not within the tick before it", tg.addr, i, s, d)
			}
			if i > 0 && s-ss[i-1] != interval {
				t.Fatalf("%v: probes %d and %d left %v apart, want exactly %v", tg.addr, i-1, i, time.Duration(s-ss[i-1]), time.Duration(interval))
			}
		}
		if len(ss) < rounds-1 {
			t.Fatalf("%v: %d probes in %d intervals", tg.addr, len(ss), rounds)
		}
	}
	if want := int(uint64(rounds) * interval / uint64(tick)); wakeups > want+1 {
		t.Errorf("%d wakeups sent probes in %d intervals, want at most %d (two an interval)", wakeups, rounds, want+1)
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
