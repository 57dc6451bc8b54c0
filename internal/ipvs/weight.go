package ipvs

import (
	"net/netip"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// SetWeight records the effective weight of a real server as its checks
// decided it (MISC_CHECK misc_dynamic, FILE_CHECK weights; see
// prober.Scheduler.OnWeight). It replaces the configured weight in the
// table and in the quorum sum, clamped to 0..65535 like any weight, until
// the next call; a reload keeps it. Like SetHealth it never blocks on the
// backend.
func (r *Reconciler) SetWeight(key config.RealServerKey, weight int) {
	r.mu.Lock()
	if r.weights == nil {
		r.weights = make(map[string]map[netip.AddrPort]int)
	}
	wv := r.weights[key.VirtualServer]
	if wv == nil {
		wv = make(map[netip.AddrPort]int)
		r.weights[key.VirtualServer] = wv
	}
	ap := netip.AddrPortFrom(key.Addr, key.Port)
	old, had := wv[ap]
	wv[ap] = weight
	if !had || old != weight {
		r.dirty[key.VirtualServer] = struct{}{}
	}
	r.mu.Unlock()
	if !had || old != weight {
		r.notify()
	}
}

// weightsLocked returns the effective weights of vs's real servers, or
// nil when no check set any. r.mu must be held.
func (r *Reconciler) weightsLocked(vs *config.VirtualServer) []int {
	wv := r.weights[vs.ID()]
	if len(wv) == 0 {
		return nil
	}
	ws := make([]int, len(vs.RealServers))
	for i, rs := range vs.RealServers {
		ws[i] = rs.Weight
		if w, ok := wv[netip.AddrPortFrom(rs.Addr, rs.Port)]; ok {
			ws[i] = w
		}
	}
	return ws
}
