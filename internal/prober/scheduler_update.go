package prober

import (
	"fmt"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Update switches the scheduler to cfg (a reload). Checks whose block is
// unchanged keep running with their state and schedule; new ones start
// after the start delay and their warmup; removed ones stop, and an
// attempt of theirs in flight is discarded. A real server kept across the
// reload whose health the new set of checkers changes gets a Transition;
// a new real server starts in its initial state (see [Scheduler.Health]).
// On error the scheduler keeps the old configuration.
func (s *Scheduler) Update(cfg *config.Config) error {
	entries, err := prepare(cfg, s.newChecker, s.ckOpts)
	if err != nil {
		return fmt.Errorf("build checkers: %w", err)
	}
	s.mu.Lock()
	ix := s.updateLocked(entries)
	det := s.fast.det
	s.mu.Unlock()
	if det != nil {
		det.forget(ix)
	}
	return nil
}

// updateLocked switches to the plan of entries and returns its endpoint
// index. The caller holds s.mu.
func (s *Scheduler) updateLocked(entries []planEntry) *epIndex {
	old := s.plan
	p, fresh := assemble(entries, old)
	for k, u := range old.units {
		if p.units[k] == nil {
			u.removed = true
			s.queue.remove(u)
		}
	}
	now := time.Now()
	for _, srv := range p.servers {
		prev := old.byKey[srv.key]
		if prev == nil {
			continue
		}
		srv.up = prev.up
		srv.weight = prev.weight
		srv.verdict = prev.verdict && srv.allRun()
		s.settle(srv, "configuration reloaded", now)
	}
	for _, srv := range p.servers {
		s.reweigh(srv) // a reload may change configured weights
	}
	s.plan = p
	s.queueFresh(fresh, now)
	s.poke()
	return s.indexLocked()
}
