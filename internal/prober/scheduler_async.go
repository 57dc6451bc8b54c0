package prober

import (
	"context"
	"sync"
	"time"
)

// Attempts without a goroutine. A unit whose checker is an asyncChecker
// (TCP_CHECK) is started by the dispatch loop itself: the connect is
// begun there and finished by the connector's loop (connect_async.go),
// which calls the scheduler's finish path directly. Everything around the
// check is as in attempt: lateness at the start, the limiter's slot held
// until the end (and parked like any other attempt), the result dropped
// when the run's context has ended, recording in batches.

// attemptRef is what the scheduler needs back when an asynchronous
// attempt ends.
type attemptRef struct {
	u        *unit
	slot     int64     // the limiter's slot
	start    time.Time // when the check started
	launched time.Time // when the dispatcher decided to start it
}

// asyncRun returns the group of the asynchronous attempts of one Run:
// each outcome releases its slot and is recorded (unless ctx has ended),
// and wg is done with it.
func (s *Scheduler) asyncRun(ctx context.Context, wg *sync.WaitGroup) *asyncGroup {
	return newAsyncGroup(ctx, func(a attemptRef, res Result, end time.Time) {
		defer wg.Done()
		s.conc.release(a.slot, a.start.Sub(a.launched), end)
		if ctx.Err() != nil {
			return // cancelled: not a verdict on the real server
		}
		s.finish(a.u, res, a.start, end)
	})
}

// attemptAsync starts one check of u, due at due, in the limit's slot,
// without a goroutine; its result is recorded when the checker hands it to
// g.
func (s *Scheduler) attemptAsync(g *asyncGroup, u *unit, due time.Time, slot int64, launched time.Time) {
	start := time.Now()
	s.lateness.observe(start.Sub(due))
	u.checker.(asyncChecker).checkAsync(g, attemptRef{u: u, slot: slot, start: start, launched: launched})
}

// asyncLateness is how late an attempt of an asynchronous checker may
// start and still run without a goroutine. Later than that the director
// is starved (or a crowd is due at once), and the attempt takes the
// goroutine path instead: many goroutines in system calls let the
// runtime hand a CPU held up in the kernel (a connect or reset preempted
// by the softirq or NAPI thread its packet woke) to another thread, where
// the one dispatch loop doing every connect would wait for it. Measured:
// docs/benchmarks.md §16.5. With one P (GOMAXPROCS=1, lvsprobe on one
// CPU) there is no other CPU to hand anything to, and the goroutine path
// only costs more (a trace at 10,000 TCP_CHECKs: ~45 µs of the P per
// late attempt against ~25 µs without a goroutine), so a late attempt
// stays on the asynchronous path there (§17.1).
const asyncLateness = 2 * time.Millisecond
