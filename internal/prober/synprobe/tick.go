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
//
// Small probers, whose 10 ms ticks carry fewer than wakeFrames probes,
// get a longer tick instead, because each wakeup costs: at 1 ms it was
// 34 % of a 100-target prober's CPU in the emulated kernel lab (§11), and
// at 10 ms the wakeups, not the probes, were still most of it (the same
// CPU at 80, 150 and 250 ms intervals, §21). Such a tick is a grid: it
// divides the shortest target interval in whole milliseconds, the loop
// wakes at its multiples (of the monotonic clock) and takes the probes
// due before the next one. A target's due times move by whole intervals,
// so each probe of a target leaves in the same slot of the grid, the
// same time before it is due: the probes of a target stay exactly an
// interval apart, never late, as at the 10 ms tick. The grid tick is at
// most half the shortest interval and maxGridTick, because the answers
// are drained on the same wakeups (poll.go).
const (
	minTick     = time.Millisecond
	wakeFrames  = 100 // probes a wakeup aims at when the rate needs ticks shorter than sendTick
	wakeLimit   = 128 // the most probes one wakeup sends (at rates up to wakeLimit per minTick)
	maxGridTick = 50 * time.Millisecond
)

// tickFor returns the send loop's tick and the most probes one wakeup
// may send for a probe rate of rate per second (the targets' nominal
// rate times the back-off factor), whose shortest target interval is
// interval (0 when there is none).
func tickFor(rate float64, interval time.Duration) (tick time.Duration, limit int) {
	tick = sendTick
	if perTick := rate * sendTick.Seconds(); perTick > wakeFrames {
		tick = max(time.Duration(wakeFrames/rate*float64(time.Second)).Truncate(time.Millisecond), minTick)
	} else if rate > 0 {
		tick = gridTick(interval, time.Duration(wakeFrames/rate*float64(time.Second)))
	}
	perTick := rate * tick.Seconds()
	limit = max(wakeLimit, int(math.Ceil(perTick*wakeLimit/wakeFrames)))
	return tick, limit
}

// gridTick returns the longest tick of whole milliseconds that divides
// interval and is no longer than want, half the interval and
// maxGridTick; sendTick when none is longer than sendTick.
func gridTick(interval, want time.Duration) time.Duration {
	if interval <= 0 || interval%time.Millisecond != 0 {
		return sendTick
	}
	ms := int64(interval / time.Millisecond)
	for d := int64(min(want, interval/2, maxGridTick) / time.Millisecond); d > int64(sendTick/time.Millisecond); d-- {
		if ms%d == 0 {
			return time.Duration(d) * time.Millisecond
		}
	}
	return sendTick
}

// gridded reports whether tick is a grid tick (gridTick): the loop then
// wakes at its multiples.
func gridded(tick time.Duration) bool { return tick > sendTick }

// gridSlack returns how much longer than at sendTick an answer may wait
// in the ring for the drain of a wakeup on tick's grid: the back-off
// (pace.go) does not count it as lateness.
func gridSlack(tick time.Duration) time.Duration {
	if !gridded(tick) {
		return 0
	}
	return tick - sendTick
}

// horizonFor returns the last due time a wakeup at ktime now takes
// probes up to: a tick ahead, or on a grid the end of now's slot.
func horizonFor(now uint64, tick time.Duration) uint64 {
	if !gridded(tick) {
		return now + uint64(tick)
	}
	g := uint64(tick)
	return now - now%g + g - 1
}

// wakeFor returns the ktime the loop wakes at for a probe due at next:
// next itself, or on a grid the start of next's slot.
func wakeFor(next uint64, tick time.Duration) uint64 {
	if !gridded(tick) {
		return next
	}
	return next - next%uint64(tick)
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
