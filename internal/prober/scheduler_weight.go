package prober

import "github.com/lvsprobe/lvsprobe/internal/config"

// OnWeight sets fn to receive every change of a real server's effective
// weight: its configured weight changed by the checks that set one
// (MISC_CHECK misc_dynamic, FILE_CHECK with a weight), as keepalived
// 2.2.7 sums them (rs->effective_weight = iweight + every checker's
// cur_weight). fn is called with the scheduler's lock held, in the order
// of the changes: it must not block nor call the scheduler (the IPVS
// reconciler's SetWeight records the value and returns). Set it before
// Run; nil turns it off.
func (s *Scheduler) OnWeight(fn func(key config.RealServerKey, weight int)) {
	s.mu.Lock()
	s.onWeight = fn
	s.mu.Unlock()
}

// applyWeight records what one result of u says about the weight and
// re-weighs u's real servers when it changed. A passing attempt sets it
// (MISC_CHECK: the script's status; FILE_CHECK: the file's number); a
// failing one keeps it until the check goes down, which clears it
// (keepalived sets cur_weight to 0 then). The caller holds s.mu.
func (s *Scheduler) applyWeight(u *unit, res Result, st step) {
	w := u.wt
	switch {
	case res.OK:
		w = res.Weight
	case st.changed && !u.state.up:
		w = WeightChange{}
	}
	if w == u.wt {
		return
	}
	u.wt = w
	for _, srv := range u.users {
		s.reweigh(srv)
	}
}

// reweigh computes srv's effective weight from its units and reports a
// change. The caller holds s.mu.
func (s *Scheduler) reweigh(srv *realServer) {
	w := srv.iweight
	for _, u := range srv.units {
		switch u.wt.Kind {
		case WeightOffset:
			w += u.wt.Value
		case WeightAbsolute: // misc_dynamic: cur_weight = status - 2 - iweight
			w += u.wt.Value - srv.iweight
		}
	}
	if w == srv.weight {
		return
	}
	srv.weight = w
	if s.onWeight != nil {
		s.onWeight(srv.key, w)
	}
}
