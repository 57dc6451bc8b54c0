package prober

import (
	"sync"
	"time"
)

// Adaptive concurrency limit tuning (see [Scheduler] for the design).
const (
	limitFloor   = 32   // the limit never shrinks below this (or MaxConcurrent when smaller); 4 let one slow attempt in a noisy guest pin throughput at 10 checks/s
	limitInitial = 32   // the limit a scheduler starts with (at most MaxConcurrent)
	limitBackoff = 0.75 // the limit is multiplied by this on overload

	// An attempt still running parkAfter after it started stops counting
	// against the limit while the director is not starved: it is waiting
	// on the network (a lost SYN's retransmission 1 s later, a black-holed
	// real server), not on the CPU. Far above a check's work on a live
	// network, far below the kernel's first SYN retransmission.
	parkAfter  = 100 * time.Millisecond
	parkBucket = 10 * time.Millisecond // attempts are aged by start time in buckets this wide
	parkRing   = 16                    // buckets kept, more than parkAfter/parkBucket

	// The director counts as starved while fewer than promptShare of the
	// attempts of healthy checks in the last promptWindow (sliding) ended
	// promptly (within parkAfter and a quarter of their timeout), and for
	// promptWindow after an attempt's goroutine waited launchStarved or
	// more to run at all.
	promptWindow  = time.Second
	promptShare   = 0.9
	launchStarved = 50 * time.Millisecond
)

// concurrencyLimit is an AIMD limit on check attempts in flight, between
// a floor and a ceiling.
//
// Starvation is read from how long attempts of healthy checks take: when
// more than a tenth of those ending in the last second took parkAfter or a
// quarter of their timeout (whichever is less) or more, slowness is
// widespread, and that is the director's CPU (every attempt waits for it),
// not a few real servers or lost packets. An attempt whose goroutine
// waited launchStarved to run at all says the same at once, for a second.
// With no attempt of a healthy check ended in the last two seconds the
// director is not starved.
//
// While starved, every attempt in flight counts against the limit, and an
// attempt of a healthy check that takes half of its timeout or more cuts
// the limit by limitBackoff, once per generation of attempts (only
// attempts started after the last cut can cut again). While not starved,
// an attempt counts only for its first parkAfter: one still running then
// is waiting on the network and holds no slot (it stays in flight, one per
// check at most), and slow attempts cut nothing. Either way, attempts
// that end in less than a quarter of their timeout while at least half
// the limit is in use grow it by one (doubling per round); those between
// a quarter and a half grow it by 1/limit (one per round).
//
// It is pure logic: the caller passes the clock's readings. Its methods
// are safe for concurrent use.
type concurrencyLimit struct {
	floor, ceiling int
	noPark         bool // every attempt counts however old (a static limit)

	mu       sync.Mutex
	limit    float64
	inflight int // every attempt in flight
	parked   int // those started parkAfter ago or more (moved out of ring)
	ring     [parkRing]ageBucket
	epoch    time.Time // bucket 0 starts here (the first acquire)
	win      time.Time // the current prompt window started here
	cur      promptCount
	prev     promptCount // the window before cur
	hungry   time.Time   // starved until then: an attempt waited launchStarved to run
	lastCut  time.Time
	freed    chan struct{} // poked when a slot may have opened
	stats    LimiterStats  // see Scheduler.LimiterStats
}

// promptCount counts the attempts of healthy checks that ended in a
// window, and how many of them promptly.
type promptCount struct{ prompt, all int }

// ageBucket counts the attempts in flight that started in one parkBucket.
type ageBucket struct {
	id int64 // parkBucket periods since the epoch
	n  int
}

// newConcurrencyLimit returns a limit between floor and ceiling starting
// at initial (each clamped to ceiling, which is at least 1).
func newConcurrencyLimit(floor, ceiling, initial int) *concurrencyLimit {
	ceiling = max(ceiling, 1)
	floor = min(max(floor, 1), ceiling)
	initial = min(max(initial, floor), ceiling)
	return &concurrencyLimit{floor: floor, ceiling: ceiling, limit: float64(initial), freed: make(chan struct{}, 1),
		stats: LimiterStats{MinLimit: initial}}
}

// bucket returns the age bucket of now. The caller holds l.mu.
func (l *concurrencyLimit) bucket(now time.Time) int64 {
	if l.epoch.IsZero() {
		l.epoch = now
	}
	return int64(max(now.Sub(l.epoch), 0) / parkBucket)
}

// age moves the attempts started parkAfter before now or earlier out of
// the ring into parked. The caller holds l.mu.
func (l *concurrencyLimit) age(now time.Time) {
	oldest := l.bucket(now) - int64(parkAfter/parkBucket) // this bucket and older are parked
	for i := range l.ring {
		if b := &l.ring[i]; b.n > 0 && b.id <= oldest {
			l.parked += b.n
			b.n = 0
		}
	}
	l.stats.MaxParked = max(l.stats.MaxParked, l.parked)
}

// roll moves the prompt windows on to now. The caller holds l.mu.
func (l *concurrencyLimit) roll(now time.Time) {
	switch d := now.Sub(l.win); {
	case l.win.IsZero() || d >= 2*promptWindow:
		l.win, l.cur, l.prev = now, promptCount{}, promptCount{}
	case d >= promptWindow:
		l.win, l.prev, l.cur = l.win.Add(promptWindow), l.cur, promptCount{}
	}
}

// starved reports whether the director looks starved at now (see the
// type's comment). The caller holds l.mu.
func (l *concurrencyLimit) starved(now time.Time) bool {
	if now.Before(l.hungry) {
		return true
	}
	l.roll(now)
	// The share over the last promptWindow, the previous window weighted
	// by how much of it that still covers.
	w := min(max(1-float64(now.Sub(l.win))/float64(promptWindow), 0), 1) // an end read before the window moved on
	prompt := float64(l.cur.prompt) + w*float64(l.prev.prompt)
	all := float64(l.cur.all) + w*float64(l.prev.all)
	return all > 0 && prompt < promptShare*all
}

// counted returns the attempts in flight at now that count against the
// limit. The caller holds l.mu.
func (l *concurrencyLimit) counted(now time.Time) int {
	if l.noPark || l.starved(now) {
		return l.inflight
	}
	return l.inflight - l.parked
}

// tryAcquire takes a slot at now if fewer than the limit count; slot
// identifies it to release.
func (l *concurrencyLimit) tryAcquire(now time.Time) (slot int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.age(now)
	if l.counted(now) >= int(l.limit) {
		return 0, false
	}
	l.inflight++
	l.stats.MaxInFlight = max(l.stats.MaxInFlight, l.inflight)
	id := l.bucket(now)
	b := &l.ring[id%parkRing]
	if b.id != id { // aged out by age above: empty
		*b = ageBucket{id: id}
	}
	b.n++
	return id, true
}

// release gives back, at now, the slot of an attempt that has ended or
// was cancelled, whose goroutine waited launch to run.
func (l *concurrencyLimit) release(slot int64, launch time.Duration, now time.Time) {
	l.mu.Lock()
	if launch >= launchStarved {
		l.hungry = now.Add(promptWindow)
		l.stats.LateLaunch++
	}
	l.inflight--
	if b := &l.ring[slot%parkRing]; b.id == slot && b.n > 0 {
		b.n--
	} else {
		l.parked--
	}
	l.mu.Unlock()
	l.poke()
}

// sample adjusts the limit with an attempt that started at start and
// ended at end with the given timeout (its slot already released).
// healthy says the check was up when the attempt started: a slow attempt
// of a check that is already down is its real server's fault, not
// evidence of overload, and does not count towards starvation.
func (l *concurrencyLimit) sample(start, end time.Time, timeout time.Duration, healthy bool) {
	if timeout <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	elapsed := end.Sub(start)
	if healthy {
		l.roll(end)
		l.cur.all++
		if elapsed < min(parkAfter, timeout/4) {
			l.cur.prompt++
		}
	}
	switch {
	case elapsed >= timeout/2:
		l.stats.Slow++
		if healthy && start.After(l.lastCut) && l.starved(end) {
			l.limit = max(float64(l.floor), l.limit*limitBackoff)
			l.lastCut = end
			l.stats.Cuts++
			l.stats.MinLimit = min(l.stats.MinLimit, int(l.limit))
		}
	case 2*l.counted(end) >= int(l.limit):
		if elapsed < timeout/4 {
			l.limit++
		} else {
			l.limit += 1 / l.limit
		}
		l.limit = min(l.limit, float64(l.ceiling))
	}
}

// current returns the limit now.
func (l *concurrencyLimit) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// inFlight returns the attempts in flight, counted or not.
func (l *concurrencyLimit) inFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight
}

// poke signals a waiter that a slot may be free, without blocking.
func (l *concurrencyLimit) poke() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}
