package prober

import "time"

// The first attempts are staggered from the start of Run, not from
// NewScheduler.
//
// keepalived's checker process registers each checker's first attempt
// (BOOTSTRAP_DELAY plus a random part of its warmup) just before its event
// loop starts, so the first round of checks is spread over the warmup.
// lvsprobe builds its scheduler first and starts it after the SYN prober
// has loaded and attached its eBPF programs: 1.8 s in the emulated kernel
// lab under load, longer on a slower machine. Measured from NewScheduler,
// every first attempt that fell due during that time started at once when
// Run began, on a CPU that the loading had just left busy; with one
// failure deciding a check before its first verdict (retry_it = retry),
// a first attempt that timed out there took a healthy real server out
// (§11 of docs/benchmarks.md, the falsedown round). Run shifts the
// schedule queued before it by the time since it was queued.

// startQueue records when the first attempts were queued (NewScheduler).
// The caller holds s.mu or owns s.
func (s *Scheduler) startQueue(now time.Time) {
	s.queuedAt = now
}

// expeditedEarly notes that u was asked to run now before Run started:
// Run keeps it due at once rather than shifting it. The caller holds s.mu.
func (s *Scheduler) expeditedEarly(u *unit) {
	if !s.started {
		s.early = append(s.early, u)
	}
}

// anchorStart shifts every attempt queued before Run by the time since
// it was queued, so that the start delay and the warmup count from now;
// checks expedited meanwhile stay due now. The caller holds s.mu.
func (s *Scheduler) anchorStart(now time.Time) {
	gap := now.Sub(s.queuedAt)
	if s.queuedAt.IsZero() || gap <= 0 {
		return
	}
	s.queue.shift(gap)
	for _, u := range s.early {
		if u.index >= 0 {
			s.queue.schedule(u, now)
		}
	}
	s.early = nil
	s.log.Debug("first checks staggered from the start", "queued_before", gap.Round(time.Millisecond))
}

// shift delays every queued unit by d. The order is unchanged, so the
// heap stays valid.
func (q *dueQueue) shift(d time.Duration) {
	for i := range q.h {
		q.h[i].at += d
		q.h[i].u.due = q.h[i].at
	}
}
