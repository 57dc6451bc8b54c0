package prober

import "time"

// LimiterStats tells what the adaptive in-flight limit did since the
// scheduler was made: how often it was cut and how low it went, and how
// long the dispatch loop waited for a slot with a check due (a check
// then starts late by that much, whatever the CPU).
type LimiterStats struct {
	Cuts        uint64        // times the limit was cut
	MinLimit    int           // the lowest the limit has been
	MaxInFlight int           // the most attempts in flight at once
	MaxParked   int           // the most in flight past parkAfter at once (counted or not)
	Slow        uint64        // attempts that took half their timeout or more
	Blocked     time.Duration // total time a due check waited for a slot
	BlockedMax  time.Duration // the longest such wait
	Stalls      uint64        // times a due check found no slot free
	LateLaunch  uint64        // attempts whose goroutine waited launchStarved or more to run
}

// noteBlocked records that a due check waited d for a slot.
func (l *concurrencyLimit) noteBlocked(d time.Duration) {
	l.mu.Lock()
	l.stats.Stalls++
	l.stats.Blocked += d
	l.stats.BlockedMax = max(l.stats.BlockedMax, d)
	l.mu.Unlock()
}

// snapshot returns the statistics so far.
func (l *concurrencyLimit) snapshot() LimiterStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// LimiterStats returns what the adaptive in-flight limit (see
// [Scheduler.ConcurrencyLimit]) did since the scheduler was made.
func (s *Scheduler) LimiterStats() LimiterStats { return s.conc.snapshot() }

// LogAttrs returns the statistics as log attributes (limit_*).
func (st LimiterStats) LogAttrs() []any {
	return []any{"limit_cuts", st.Cuts, "limit_min", st.MinLimit, "limit_max_in_flight", st.MaxInFlight, "limit_max_parked", st.MaxParked,
		"limit_slow_attempts", st.Slow, "limit_stalls", st.Stalls, "limit_late_launches", st.LateLaunch, "limit_blocked", st.Blocked.Round(time.Millisecond),
		"limit_blocked_max", st.BlockedMax.Round(time.Microsecond)}
}
