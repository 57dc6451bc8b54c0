package ipvs

import "github.com/lvsprobe/lvsprobe/internal/config"

// QuorumChange is a change of a virtual server's quorum state, reported
// when keepalived 2.2.7 would run its quorum_up or quorum_down script
// (check/ipwrapper.c update_quorum_state):
//
//   - at the first evaluation of a virtual server (start, or a virtual
//     server added by a reload): quorum up is reported ("Starting with
//     quorum up"); quorum down only when the virtual server has a
//     sorry_server ("Starting with quorum down"), since keepalived starts
//     every virtual server without quorum and reports only the sorry
//     server's arrival;
//   - afterwards, every change of state.
type QuorumChange struct {
	VirtualServer string // VirtualServer.ID()
	Up            bool   // the new state
	Start         bool   // the first evaluation of this virtual server
	Weight        int    // sum of the weights of its alive real servers
}

// OnQuorum sets fn to receive every QuorumChange, in order, from the
// reconcile pass that decided it (after the reconciler's lock is
// released; the pass waits for fn, so fn should hand the change on, not
// run a script). nil stops the reports. A change decided before OnQuorum
// is called is not reported.
func (r *Reconciler) OnQuorum(fn func(QuorumChange)) {
	r.mu.Lock()
	r.onQuorum = fn
	r.mu.Unlock()
}

// noteQuorumLocked queues the QuorumChange that evaluating vs (previous
// state prev, nil the first time) produced, if any. r.mu must be held.
func (r *Reconciler) noteQuorumLocked(vs *config.VirtualServer, prev *bool, res vsResult) {
	if r.onQuorum == nil {
		return
	}
	switch {
	case prev == nil && (res.QuorumUp || vs.SorryServer != nil):
	case prev != nil && *prev != res.QuorumUp:
	default:
		return
	}
	r.quorumOut = append(r.quorumOut, QuorumChange{VirtualServer: vs.ID(), Up: res.QuorumUp, Start: prev == nil, Weight: res.Weight})
}

// deliverQuorum hands the queued changes to the OnQuorum function. It is
// called without r.mu, under r.pass, so deliveries keep their order.
func (r *Reconciler) deliverQuorum() {
	r.mu.Lock()
	out, fn := r.quorumOut, r.onQuorum
	r.quorumOut = nil
	r.mu.Unlock()
	for _, c := range out {
		fn(c)
	}
}
