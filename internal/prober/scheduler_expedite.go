package prober

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// fastPath is the scheduler's side of the failure detector: the index
// from endpoints to the checks that connect there, the checks asked for
// while an attempt of theirs was in flight, and the hooks [Scheduler]'s
// complete calls around each result. Its fields are guarded by the
// scheduler's lock, except idx, which is read without it.
type fastPath struct {
	det     *Detector // nil: no detector, the hooks do nothing
	idx     atomic.Pointer[epIndex]
	pending map[*unit]string // asked for while in flight: run again at once, with this reason
}

// epIndex maps endpoints to units, for one plan. It is never changed
// once built. A unit's own endpoint is unit.endpoint(); a real server's endpoints
// are those of its units (Scheduler.endpointsOf).
type epIndex struct {
	plan  *plan
	units map[netip.AddrPort]*unit // the first unit connecting to each endpoint; the others follow through unit.epNext
}

// endpointOf is where a checker block connects, or false when it has no
// TCP/UDP endpoint of its own (fwmark services, checks without a port).
func endpointOf(c *config.Checker) (netip.AddrPort, bool) {
	if c == nil || !c.ConnectIP.IsValid() || c.ConnectPort == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(c.ConnectIP.Unmap(), c.ConnectPort), true
}

// buildIndex indexes p.
func buildIndex(p *plan) *epIndex {
	ix := &epIndex{plan: p, units: make(map[netip.AddrPort]*unit, len(p.units))}
	for _, u := range p.units {
		u.epNext = nil
		if a := u.endpoint(); a.IsValid() {
			u.epNext = ix.units[a]
			ix.units[a] = u
		}
	}
	return ix
}

func containsAddr(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// indexLocked returns the index of the current plan, building it after a
// reload. The caller holds s.mu.
func (s *Scheduler) indexLocked() *epIndex {
	ix := s.fast.idx.Load()
	if ix == nil || ix.plan != s.plan {
		ix = buildIndex(s.plan)
		s.fast.idx.Store(ix)
	}
	return ix
}

// index returns the newest index without the scheduler's lock (it may
// predate a reload by one completed check).
func (s *Scheduler) index() *epIndex {
	if ix := s.fast.idx.Load(); ix != nil {
		return ix
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.indexLocked()
}

// hasEndpoint reports whether a check connects to addr.
func (s *Scheduler) hasEndpoint(addr netip.AddrPort) bool {
	_, ok := s.index().units[addr]
	return ok
}

// endpointsOf returns the endpoints the checks of a real server connect
// to. It takes the scheduler's lock: a unit's endpoint is read from its
// block, which a reload replaces (with one of the same endpoint).
func (s *Scheduler) endpointsOf(key config.RealServerKey) []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv := s.plan.byKey[key]
	if srv == nil {
		return nil
	}
	var addrs []netip.AddrPort
	for _, u := range srv.units {
		if a := u.endpoint(); a.IsValid() && !containsAddr(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// attachDetector makes d the scheduler's detector; false if it has one.
func (s *Scheduler) attachDetector(d *Detector) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fast.det != nil {
		return false
	}
	s.fast.det = d
	s.fast.pending = map[*unit]string{}
	s.indexLocked()
	return true
}

// Expedite runs every check that connects to addr now, pre-empting its
// delay_loop or delay_before_retry: a check waiting in the queue becomes
// due at once, ahead of any checks already due and waiting (still within
// the rate cap and the in-flight limit), and a
// check whose attempt is in flight runs again as soon as that attempt
// ends. It changes no state of the checks: their results decide, with
// keepalived's state machine, as any other attempt's. It returns the
// number of checks expedited, 0 when no check connects to addr.
func (s *Scheduler) Expedite(addr netip.AddrPort, reason string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	// Ahead of a backlog: when checks already due wait (a starved or
	// rate-capped scheduler), a suspected endpoint's check is due with
	// the earliest of them, not behind all of them; it used to wait for
	// the backlog (up to 60 ms under load, docs/benchmarks.md §17.3).
	at := now
	if h := s.queue.next(); h != nil && s.queue.dueOf(h).Before(at) {
		at = s.queue.dueOf(h).Add(-time.Nanosecond) // before it, not tied with it
	}
	n := 0
	for u := s.indexLocked().units[addr]; u != nil; u = u.epNext {
		if u.removed {
			continue
		}
		n++
		if u.index < 0 {
			if s.fast.pending == nil {
				s.fast.pending = map[*unit]string{}
			}
			s.fast.pending[u] = reason
			continue
		}
		if s.queue.dueOf(u).After(at) {
			s.queue.schedule(u, at)
			s.expeditedEarly(u)
		}
	}
	if n > 0 {
		s.poke()
		s.log.Debug("checks expedited", "endpoint", addr.String(), "checks", n, "reason", reason)
	}
	return n
}

// before runs before a result is recorded: in fast mode, a failure of an
// up check that the detector finds corroborated climbs the whole retry
// ladder at once, so this one attempt decides. The caller holds s.mu.
func (f *fastPath) before(u *unit, res Result, now time.Time) {
	if f.det == nil || res.OK || !u.state.up {
		return
	}
	a := u.endpoint()
	if !a.IsValid() || u.state.retryIt >= u.pol.retry {
		return // nothing to cut: this failure decides anyway
	}
	why, ok := f.det.corroborates(a, now.Add(-res.Duration))
	if !ok {
		return
	}
	f.det.s.log.Info("retry ladder cut short: the failed check is corroborated", "checker", u.checker.String(),
		"endpoint", a.String(), "corroboration", why, "retries_skipped", u.pol.retry-u.state.retryIt)
	u.state.retryIt = u.pol.retry
}

// checked runs once a result is recorded, before the transitions it
// causes are emitted: it tells the detector, so that the evidence they
// carry (detection) includes this attempt. The caller holds s.mu.
func (f *fastPath) checked(u *unit, res Result, now time.Time) {
	if f.det == nil {
		return
	}
	if a := u.endpoint(); a.IsValid() {
		f.det.checked(a, res.OK, f.endpointUp(a), now.Add(-res.Duration))
	}
}

// endpointUp reports whether every check connecting to a is up. The
// caller holds s.mu.
func (f *fastPath) endpointUp(a netip.AddrPort) bool {
	for v := f.det.s.indexLocked().units[a]; v != nil; v = v.epNext {
		if !v.removed && !v.state.up {
			return false
		}
	}
	return true
}

// detection is the evidence for a transition of srv at at, taken when the
// scheduler emits it: the episodes of srv's endpoints as they are now,
// not as they are when the transition is delivered (by then a SYN-ACK may
// have started the next episode of an endpoint that just went down). Nil
// without a detector. The caller holds s.mu.
func (f *fastPath) detection(srv *realServer, at time.Time) *Detection {
	if f.det == nil {
		return nil
	}
	var addrs []netip.AddrPort
	for _, u := range srv.units {
		if a := u.endpoint(); a.IsValid() && !containsAddr(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return f.det.snapshot(addrs, at)
}

// after runs once the transitions of a result are emitted: an endpoint
// that passed and is up again ends its episode (its evidence went with
// the recovery), and it returns when u is next due — at once when it was
// expedited while in flight. The caller holds s.mu.
func (f *fastPath) after(u *unit, res Result, st step) time.Duration {
	if f.det == nil {
		return st.delay
	}
	if a := u.endpoint(); a.IsValid() && res.OK && f.endpointUp(a) {
		f.det.endEpisode(a)
	}
	if _, ok := f.pending[u]; ok {
		delete(f.pending, u)
		return 0
	}
	return st.delay
}
