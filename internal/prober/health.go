package prober

import (
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// policy is the timing of one checker block, as keepalived 2.2.7 applies
// it: check_tcp.c's tcp_epilog for TCP_CHECK (and every checker that shares
// its retry ladder), check_http.c's epilog/timeout_epilog for HTTP_GET and
// SSL_GET.
type policy struct {
	delayLoop        time.Duration
	retry            int
	delayBeforeRetry time.Duration
	warmup           time.Duration
	alpha            bool
	http             bool // HTTP_GET / SSL_GET semantics (failed URL memory, fast_recovery)
	fastRecovery     bool
	ladderOnlyUp     bool // failures climb the retry ladder only while up (MISC, DNS, UDP, PING); see checkerPolicy
}

// policyOf reads the timing of a checker block.
func policyOf(c *config.Checker) policy {
	p := policy{
		delayLoop:        c.DelayLoop,
		retry:            max(c.Retry, 0),
		delayBeforeRetry: c.DelayBeforeRetry,
		warmup:           max(c.Warmup, 0),
		alpha:            c.Alpha,
		http:             c.Type == config.HTTPGet || c.Type == config.SSLGet,
	}
	if p.http && c.HTTP != nil {
		p.fastRecovery = c.HTTP.FastRecovery
	}
	checkerPolicy(c, &p)
	return p
}

// checkState is keepalived's per-checker state (checker_t's is_up, has_run,
// retry_it and, for HTTP, failed_url), advanced one attempt at a time by
// [checkState.record]. It is pure logic: no clock, no I/O.
type checkState struct {
	retryIt int  // retry_it: failed attempts counted on the current ladder
	up      bool // is_up: the checker counts as passing
	hasRun  bool // has_run: a verdict has been reached at least once
	failed  bool // HTTP only: failed_url is set (the retries were exhausted)
}

// newCheckState is the state of a checker when lvsprobe starts: up unless
// alpha, and, as keepalived's check_data.c sets retry_it = retry, one
// failure is enough to take it down before it has run.
func newCheckState(p policy) checkState {
	return checkState{up: !p.alpha, retryIt: p.retry}
}

// step is what one attempt decided.
type step struct {
	delay     time.Duration // wait this long after the attempt completed before the next one
	changed   bool          // up flipped
	exhausted bool          // a failure that ended a retry ladder (keepalived logs "failed after N retries")
}

// record advances the state by the result of one attempt and returns when
// the next attempt is due.
func (s *checkState) record(p policy, ok bool) step {
	if p.http {
		return s.recordHTTP(p, ok)
	}
	return s.recordTCP(p, ok)
}

// recordTCP is tcp_epilog: a failure climbs the ladder (retry attempts
// delay_before_retry apart), and the attempt that finds retry_it == retry
// decides; a success decides at once. Either way the next attempt is a
// delay_loop later. The ladder is climbed again while the checker is down.
func (s *checkState) recordTCP(p policy, ok bool) step {
	var st step
	if ok || s.retryIt >= p.retry || (p.ladderOnlyUp && !s.up && s.hasRun) {
		st.delay = p.delayLoop
		s.retryIt = 0
		switch {
		case ok && (!s.up || !s.hasRun):
			st.changed = !s.up
			s.up = true
		case !ok && (s.up || !s.hasRun):
			st.changed = s.up
			st.exhausted = true
			s.up = false
		}
	} else {
		st.delay = p.delayBeforeRetry
		s.retryIt++
	}
	s.hasRun = true
	return st
}

// recordHTTP is check_http.c's epilog and timeout_epilog with every url of
// the checker treated as one attempt (lvsprobe's HTTP checker fetches all
// of them in one Check; keepalived fetches one url per delay_loop).
//
// While up, retry+1 consecutive failures delay_before_retry apart take the
// checker down and remember the failure (failed_url); while it is
// remembered, failures are retried every max(delay_before_retry,
// delay_loop) and the first success only forgets it: the success after
// that, a delay_loop later (at once with fast_recovery), brings it up.
//
// One deviation: keepalived also reschedules at once after a failure in
// the window between forgetting the failure and the next success, which
// spins on a flapping server; lvsprobe waits delay_before_retry there.
func (s *checkState) recordHTTP(p policy, ok bool) step {
	var st step
	if ok {
		s.retryIt = 0
		if s.failed {
			s.failed = false
		} else {
			st.changed = !s.up
			s.up = true
			s.hasRun = true
		}
		st.delay = p.delayLoop
		if p.fastRecovery && !s.up && !s.failed {
			st.delay = 0
		}
		return st
	}
	if s.up || !s.hasRun {
		s.hasRun = true
		s.retryIt++
		if s.retryIt > p.retry {
			st.changed = s.up
			st.exhausted = true
			s.up = false
			s.failed = true
		}
	}
	st.delay = p.delayBeforeRetry
	if s.failed {
		st.delay = max(p.delayBeforeRetry, p.delayLoop)
	}
	return st
}
