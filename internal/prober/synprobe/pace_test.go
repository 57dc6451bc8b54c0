package synprobe

import (
	"testing"
	"time"
)

func TestPace(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	type round struct {
		at               int // ms since the start
		sendLate, ansLat int // ms
		added, targets   int // targets added before the round, of how many
		want             paceChange
		wantRate         float64
	}
	// rounds every 100 ms of one window, the last one ending it
	window := func(start, sendLate, ansLate, lateRounds int, want paceChange, rate float64) []round {
		var rs []round
		for i := range 10 {
			r := round{at: start + 100*i, wantRate: -1}
			if i < lateRounds {
				r.sendLate, r.ansLat = sendLate, ansLate
			}
			rs = append(rs, r)
		}
		rs = append(rs, round{at: start + 1000, want: want, wantRate: rate})
		return rs
	}
	cat := func(ws ...[]round) []round {
		var out []round
		for _, w := range ws {
			out = append(out, w...)
		}
		return out
	}
	// addOf adds n targets (of targets probed) before the first round of rs
	addOf := func(n, targets int, rs []round) []round {
		rs[0].added, rs[0].targets = n, targets
		return rs
	}
	// bulk adds n targets (of n) before the first round of rs
	bulk := func(n int, rs []round) []round { return addOf(n, n, rs) }
	// ignored is a round before the window starts: the last change is
	// taking effect, nothing changes whatever its lateness
	ignored := func(at int) round { return round{at: at, sendLate: 900, ansLat: 900, wantRate: -1} }
	tests := []struct {
		name     string
		rounds   []round
		interval time.Duration // pace.interval
	}{
		{"healthy: nothing changes", cat(window(0, 0, 0, 0, paceSame, 1), window(1000, 0, 0, 0, paceSame, 1)), 0},
		{"one late round is a hiccup", window(0, 200, 0, 1, paceSame, 1), 0},
		{"lateness within the tick and the quiet poll is not starvation", window(0, 40, 90, 10, paceSame, 1), 0},
		{"a few late rounds among many are other programs' load", window(0, 400, 0, 2, paceSame, 1), 0},
		{"a send loop late in a quarter of its rounds halves the rate", window(0, 60, 0, 3, paceCut, 0.5), 0},
		{"late answers halve the rate", window(0, 0, 150, 3, paceCut, 0.5), 0},
		{"starved: halves each window down to the floor, then stays", cat(
			window(0, 300, 300, 10, paceCut, 0.5),
			window(1000, 300, 300, 10, paceCut, 0.25),
			window(2000, 300, 300, 10, paceCut, 0.125),
			window(3000, 300, 300, 10, paceCut, 1.0/16),
			window(4000, 300, 300, 10, paceSame, 1.0/16),
		), 0},
		{"healthy again: additive increase back to nominal", cat(
			window(0, 300, 0, 10, paceCut, 0.5),
			window(1000, 0, 0, 0, paceRaised, 0.625),
			window(2000, 0, 0, 0, paceRaised, 0.75),
			window(3000, 0, 0, 0, paceRaised, 0.875),
			window(4000, 0, 0, 0, paceRestore, 1),
			window(5000, 0, 0, 0, paceSame, 1),
		), 0},
		{"start-up: no cut within the grace after a bulk add, then the guard again", cat(
			bulk(10000, window(0, 300, 300, 10, paceSame, 1)),
			window(1000, 300, 300, 10, paceSame, 1),
			window(2000, 300, 300, 10, paceSame, 1),
			window(3000, 300, 300, 10, paceSame, 1),
			window(4000, 300, 300, 10, paceCut, 0.5), // ends at 5 s: the grace is over
		), 0},
		{"a small prober's start is a start: grace", cat(
			window(0, 0, 0, 0, paceSame, 1),
			bulk(2, window(1000, 300, 300, 10, paceSame, 1)),
		), 0},
		{"one target added to ten is no bulk: no grace", cat(
			window(0, 0, 0, 0, paceSame, 1),
			addOf(1, 20, window(1000, 300, 300, 10, paceCut, 0.5)),
		), 0},
		{"a tenth of many targets added is no bulk", cat(
			window(0, 0, 0, 0, paceSame, 1),
			addOf(900, 10000, window(1000, 300, 300, 10, paceCut, 0.5)),
		), 0},
		{"near the floor the rate grows by half at most", cat(
			window(0, 300, 0, 10, paceCut, 0.5),
			window(1000, 300, 0, 10, paceCut, 0.25),
			window(2000, 300, 0, 10, paceCut, 0.125),
			window(3000, 300, 0, 10, paceCut, 1.0/16),
			window(4000, 0, 0, 0, paceRaised, 3.0/32),
			window(5000, 0, 0, 0, paceRaised, 9.0/64),
			window(6000, 0, 0, 0, paceRaised, 27.0/128),
			window(7000, 0, 0, 0, paceRaised, 81.0/256),
			window(8000, 0, 0, 0, paceRaised, 81.0/256+0.125), // half of the rate is more than paceStep
		), 0},
		{"a change is judged once it took effect: an interval at the old rate later", cat(
			window(0, 300, 0, 10, paceCut, 0.5), // winStart 1000 + 100 ms
			[]round{ignored(1050)},
			window(1100, 300, 0, 10, paceCut, 0.25), // 2100 + 200 ms
			[]round{ignored(2200)},
			window(2300, 0, 0, 0, paceRaised, 0.375), // 3300 + 400 ms
			[]round{ignored(3500), ignored(3650)},
			window(3700, 0, 0, 0, paceRaised, 0.5),
		), 100 * time.Millisecond},
		{"a window with one late round neither cuts nor raises", cat(
			window(0, 300, 0, 10, paceCut, 0.5),
			window(1000, 300, 0, 1, paceSame, 0.5),
		), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := pace{interval: tc.interval}
			const base = uint64(5e9) // ktime is never 0
			for i, r := range tc.rounds {
				got, _ := c.observe(base+uint64(ms(r.at)), ms(r.sendLate), ms(r.ansLat), r.added, r.targets)
				if got != r.want {
					t.Fatalf("round %d at %d ms: change %d, want %d", i, r.at, got, r.want)
				}
				if r.wantRate >= 0 && c.factor() != r.wantRate {
					t.Fatalf("round %d at %d ms: rate %v, want %v", i, r.at, c.factor(), r.wantRate)
				}
			}
		})
	}
}

func TestPaceStretch(t *testing.T) {
	var p Prober
	if got := p.stretch(100e6); got != 100e6 {
		t.Fatalf("zero value stretches to %d", got)
	}
	p.rate = 0.25
	if got := p.stretch(100e6); got != 400e6 {
		t.Fatalf("rate 1/4 stretches 100 ms to %d ns, want 400 ms", got)
	}
}
