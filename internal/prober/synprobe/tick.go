package synprobe

import (
	"math"
	"time"
)

// Spreading the probes. The send loop wakes once a tick and sends the
// probes due within it. At 10 ms, a 10,000-target prober (100,000
// probes/s) sent about 1,000 frames per wakeup: far more than a veth's
// 256-packet queue, and the real servers' answers came back in bursts as
// large, which their side of the link dropped by the hundred thousand
// (docs/benchmarks.md §13). The tick therefore shrinks as the rate grows,
// so that a wakeup carries about wakeFrames probes, down to minTick (in
// whole milliseconds: the Go runtime's timers sleep in whole milliseconds
// when the process is idle, so 3.3 ms would be 4), and one wakeup never
// sends more than its limit, wakeLimit (above 100,000 probes/s, what a
// minTick needs with the same headroom), of probes not yet due. Probes
// already late are never held back: a loop that wakes late sends its
// backlog at once, as before the spreading (holding it back to the limit
// capped the rate at the limit per actual wakeup, below the nominal rate
// where the runtime's timers wake late, so the loop fell further behind
// and the back-off held a quiet 10,000-target prober at 1/16: §14).
// Small probers keep the 10 ms tick: each wakeup costs (34 % of a
// 100-target prober's CPU at 1 ms in the emulated kernel lab, §11).
const (
	minTick    = time.Millisecond
	wakeFrames = 100 // probes a wakeup aims at when the rate needs ticks shorter than sendTick
	wakeLimit  = 128 // the most probes one wakeup sends (at rates up to wakeLimit per minTick)
)

// tickFor returns the send loop's tick and the most probes one wakeup
// may send for a probe rate of rate per second (the targets' nominal
// rate times the back-off factor).
func tickFor(rate float64) (tick time.Duration, limit int) {
	tick = sendTick
	if perTick := rate * sendTick.Seconds(); perTick > wakeFrames {
		tick = max(time.Duration(wakeFrames/rate*float64(time.Second)).Truncate(time.Millisecond), minTick)
	}
	perTick := rate * tick.Seconds()
	limit = max(wakeLimit, int(math.Ceil(perTick*wakeLimit/wakeFrames)))
	return tick, limit
}

// catchUpWait is how long the send loop waits after a wakeup that sent
// its limit while more probes were due: half a tick, so that a backlog
// drains at up to 2.5 times the nominal rate, in wakeups of bounded size
// (at the 1 ms tick, the runtime's 1 ms sleeps leave 1.28 times).
func catchUpWait(tick time.Duration) time.Duration { return tick / 2 }

// probeRate returns the nominal probes per second of targets probed every
// interval ns.
func probeRate(interval uint64) float64 {
	if interval == 0 {
		return 0
	}
	return float64(time.Second) / float64(interval)
}

// newLateness returns the lateness a round of the send loop reports to
// the back-off (pace.go): how late it took its first due probe (late),
// unless it drains a backlog (draining: the round before left probes due)
// and is no later than that round (prev). A backlog that drains, spread
// over wakeups, shrinks round by round; its lateness is counted once, in
// the round it appeared, not in every wakeup that drains it. A backlog
// that grows (the loop cannot keep up) is counted each round.
func newLateness(draining bool, late, prev time.Duration) time.Duration {
	if draining && late <= prev {
		return 0
	}
	return late
}
