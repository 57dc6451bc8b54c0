package prober

import (
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// RealServerHealth is the health of one real server and of the checks
// that decide it.
type RealServerHealth struct {
	Key      config.RealServerKey
	Up       bool // up only when every check is up
	Weight   int  // effective weight: the configured one as MISC_CHECK misc_dynamic and FILE_CHECK change it (see OnWeight)
	Checkers []CheckerHealth
}

// CheckerHealth is the state of one check.
type CheckerHealth struct {
	Checker   string     // the checker's String()
	Pos       config.Pos // the block it came from (the first, when shared)
	Up        bool
	HasRun    bool      // a verdict was reached at least once
	Retries   int       // failed attempts on the current retry ladder
	Users     int       // real servers fed by this check
	Last      Result    // the latest attempt's result
	LastAt    time.Time // when it completed; zero before the first
	Next      time.Time // when the next attempt is due; zero while one runs
	DelayLoop time.Duration
}

// SchedulerStats counts the scheduler's work.
type SchedulerStats struct {
	Checks      int    // distinct checks scheduled (shared blocks count once)
	RealServers int    // real servers
	Down        int    // real servers down
	Attempts    uint64 // attempts completed
	Failures    uint64 // attempts failed
	InFlight    int    // attempts running now
	Transitions uint64 // reports delivered or queued: changes, and first verdicts with FirstVerdict
}

// Health returns the health of every real server, in configuration order.
func (s *Scheduler) Health() []RealServerHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RealServerHealth, 0, len(s.plan.servers))
	for _, srv := range s.plan.servers {
		h := RealServerHealth{Key: srv.key, Up: srv.up, Weight: srv.weight, Checkers: make([]CheckerHealth, 0, len(srv.units))}
		for _, u := range srv.units {
			c := CheckerHealth{
				Checker: u.checker.String(), Pos: u.block.Pos,
				Up: u.state.up, HasRun: u.state.hasRun, Retries: u.state.retryIt,
				Users: len(u.users), Last: u.last, DelayLoop: u.pol.delayLoop,
			}
			if u.hasLast {
				c.LastAt = s.queue.epoch.Add(u.lastAt)
			}
			if u.index >= 0 {
				c.Next = s.queue.dueOf(u)
			}
			h.Checkers = append(h.Checkers, c)
		}
		out = append(out, h)
	}
	return out
}

// Stats returns counts of the scheduler's work.
func (s *Scheduler) Stats() SchedulerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SchedulerStats{Checks: len(s.plan.units), RealServers: len(s.plan.servers),
		Attempts: s.checks, Failures: s.fails, InFlight: s.conc.inFlight(), Transitions: s.transitions.Load()}
	for _, srv := range s.plan.servers {
		if !srv.up {
			st.Down++
		}
	}
	return st
}

// Lateness returns how late attempts started: actual start minus due
// time, over every attempt since the scheduler was made.
func (s *Scheduler) Lateness() Lateness { return s.lateness.snapshot() }
