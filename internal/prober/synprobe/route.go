package synprobe

import (
	"fmt"
	"net/netip"
)

// routeTo returns the interface the kernel routes remote through (the
// answers arrive there, so the receiver must watch it) and the next hop:
// the gateway, or remote itself on a directly connected network. It asks
// through p's netlink handle, opened in New's network namespace.
func (p *Prober) routeTo(remote netip.Addr) (ifindex int, hop netip.Addr, err error) {
	p.nlMu.Lock()
	rs, err := p.nl.RouteGet(remote.AsSlice())
	p.nlMu.Unlock()
	if err != nil {
		return 0, netip.Addr{}, fmt.Errorf("route to %v: %w", remote, err)
	}
	if len(rs) == 0 || rs[0].LinkIndex == 0 {
		return 0, netip.Addr{}, fmt.Errorf("route to %v: no output interface", remote)
	}
	hop = remote
	if gw, ok := netip.AddrFromSlice(rs[0].Gw); ok && gw.IsValid() && !gw.IsUnspecified() {
		hop = gw.Unmap()
	}
	return rs[0].LinkIndex, hop, nil
}
