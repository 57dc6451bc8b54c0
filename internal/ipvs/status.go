package ipvs

import (
	"net/netip"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// DestinationKey names one destination of one IPVS service.
type DestinationKey struct {
	Service config.ServiceKey // in canonical form (see DestinationOf)
	Addr    netip.Addr
	Port    uint16
}

// DestinationOf returns the key of the destination that real server rs
// of vs has in service k (one of the services vs owns): the address and
// port keepalived programs for its forwarding method.
func DestinationOf(vs *config.VirtualServer, rs *config.RealServer, k config.ServiceKey) DestinationKey {
	m := rs.Method
	if m == "" {
		m = vs.Method
	}
	return DestinationKey{Service: serviceID(k), Addr: rs.Addr.Unmap(), Port: destPort(k, m, rs.Port)}
}

// ServiceKeys returns the IPVS services vs owns (its group expanded).
func ServiceKeys(vs *config.VirtualServer) []config.ServiceKey { return serviceKeys(vs) }

// Weights returns the weight of every destination the reconciler keeps in
// its services, as its last pass computed them (a destination out of the
// table is absent; see Stats for writes still failing). Nil before the
// first pass.
func (r *Reconciler) Weights() map[DestinationKey]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.desired == nil {
		return nil
	}
	n := 0
	for _, ts := range r.desired {
		n += len(ts.dests)
	}
	out := make(map[DestinationKey]int, n)
	for id, ts := range r.desired {
		for _, d := range ts.dests.all() {
			out[DestinationKey{Service: id, Addr: d.Addr, Port: d.Port}] = d.Weight
		}
	}
	return out
}
