package prober

import (
	"slices"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Recording results without a convoy.
//
// Every attempt's result must be recorded under the scheduler's lock. When
// each attempt's goroutine took the lock itself, a starved CPU turned the
// lock into a convoy: hundreds of finished attempts queued on it, each
// handoff waiting for its goroutine to be given a CPU (a goroutine profile
// at 10,000 TCP_CHECKs showed ~700 of ~1,000 in flight waiting there).
// Instead, a finished attempt pushes its unit on a lock-free list and
// leaves; one goroutine at a time (the combiner, whichever finished
// attempt wins a TryLock) records every result pushed so far under one
// acquisition of the lock. A pusher that loses the TryLock leaves at once:
// the combiner looks at the list again after it lets go, so no result is
// left behind.

// finished is what an attempt hands over: its result and times. It is
// embedded in the unit (a unit has at most one attempt in flight), so
// handing over allocates nothing. Written by the attempt before the push,
// read by the combiner after the pop.
type finished struct {
	res   Result
	start time.Time
	took  time.Duration // end minus start (end = start.Add(took), monotonic clock kept)
	next  *unit         // the list of finished units
}

// doneRecord is what the combiner keeps of one result to finish its work
// outside the lock (by then the unit may be running again).
type doneRecord struct {
	start, end time.Time
	timeout    time.Duration
	healthy    bool
	ok         bool
	typ        config.CheckerType
}

// finish hands u's result over to be recorded and records results while
// it is the combiner.
func (s *Scheduler) finish(u *unit, res Result, start, end time.Time) {
	u.fin.res, u.fin.start, u.fin.took = res, start, end.Sub(start)
	for {
		h := s.doneHead.Load()
		u.fin.next = h
		if s.doneHead.CompareAndSwap(h, u) {
			break
		}
	}
	for s.doneHead.Load() != nil && s.combining.TryLock() {
		s.recordFinished()
		s.combining.Unlock()
	}
}

// recordFinished records every result pushed so far, in the order the
// attempts finished, under one acquisition of s.mu. The caller holds
// s.combining, which guards the scratch slices.
func (s *Scheduler) recordFinished() {
	batch := s.doneUnits[:0]
	for u := s.doneHead.Swap(nil); u != nil; u = u.fin.next {
		batch = append(batch, u)
	}
	slices.Reverse(batch) // the list is newest first
	recs := s.doneRecs[:0]
	s.mu.Lock()
	for _, u := range batch {
		f := &u.fin
		end := f.start.Add(f.took)
		recs = append(recs, doneRecord{start: f.start, end: end, timeout: u.timeout(), healthy: u.state.up,
			ok: f.res.OK, typ: u.block.Type})
		res := f.res
		f.res, f.next = Result{}, nil
		s.complete(u, res, end) // may queue u again: f is not read after this
	}
	s.mu.Unlock()
	for _, r := range recs {
		s.conc.sample(r.start, r.end, r.timeout, r.healthy)
		s.metrics.observe(r.typ, r.ok, r.end.Sub(r.start))
	}
	clear(batch) // no unit kept alive by the scratch
	s.doneUnits, s.doneRecs = batch[:0], recs[:0]
}
