package synprobe

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// routeTo returns the interface the kernel routes remote through (the
// answers arrive there, so the receiver must watch it) and the next hop:
// the gateway, or remote itself on a directly connected network.
func routeTo(remote netip.Addr) (ifindex int, hop netip.Addr, err error) {
	rs, err := netlink.RouteGet(remote.AsSlice())
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
