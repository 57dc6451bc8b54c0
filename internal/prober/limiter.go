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
)

// concurrencyLimit is an AIMD limit on check attempts in flight, between
// a floor and a ceiling. An attempt of a healthy check that takes half of
// its timeout or more is read as the process being starved: the limit is
// cut by limitBackoff, once per generation of attempts (only attempts
// started after the last cut can cut again). Attempts that end in less
// than a quarter of their timeout while at least half the limit is in use
// grow it by one (doubling per round); those between a quarter and a half
// grow it by 1/limit (one per round).
//
// It is pure logic: the caller passes the clock's readings. Its methods
// are safe for concurrent use.
type concurrencyLimit struct {
	floor, ceiling int

	mu       sync.Mutex
	limit    float64
	inflight int
	lastCut  time.Time
	freed    chan struct{} // poked when a slot may have opened
}

// newConcurrencyLimit returns a limit between floor and ceiling starting
// at initial (each clamped to ceiling, which is at least 1).
func newConcurrencyLimit(floor, ceiling, initial int) *concurrencyLimit {
	ceiling = max(ceiling, 1)
	floor = min(max(floor, 1), ceiling)
	initial = min(max(initial, floor), ceiling)
	return &concurrencyLimit{floor: floor, ceiling: ceiling, limit: float64(initial), freed: make(chan struct{}, 1)}
}

// tryAcquire takes a slot if fewer than the limit are in flight.
func (l *concurrencyLimit) tryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight >= int(l.limit) {
		return false
	}
	l.inflight++
	return true
}

// cancel gives back a slot without a sample (the attempt was cancelled).
func (l *concurrencyLimit) cancel() {
	l.mu.Lock()
	l.inflight--
	l.mu.Unlock()
	l.poke()
}

// done gives back the slot of an attempt that started at start and ended
// at end with the given timeout, and adjusts the limit. healthy says the
// check was up when the attempt started: a slow attempt of a check that is
// already down is its real server's fault, not evidence of overload.
func (l *concurrencyLimit) done(start, end time.Time, timeout time.Duration, healthy bool) {
	l.mu.Lock()
	used := l.inflight
	l.inflight--
	elapsed := end.Sub(start)
	switch {
	case timeout <= 0:
	case elapsed >= timeout/2:
		if healthy && start.After(l.lastCut) {
			l.limit = max(float64(l.floor), l.limit*limitBackoff)
			l.lastCut = end
		}
	case 2*used >= int(l.limit):
		if elapsed < timeout/4 {
			l.limit++
		} else {
			l.limit += 1 / l.limit
		}
		l.limit = min(l.limit, float64(l.ceiling))
	}
	l.mu.Unlock()
	l.poke()
}

// current returns the limit now.
func (l *concurrencyLimit) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// poke signals a waiter that a slot may be free, without blocking.
func (l *concurrencyLimit) poke() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}
