package synprobe

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// outIfindex returns the index of the interface the kernel routes remote
// through: the answers to probes for remote arrive there, so that is
// where the receiver must watch.
func outIfindex(remote netip.Addr) (int, error) {
	rs, err := netlink.RouteGet(remote.AsSlice())
	if err != nil {
		return 0, fmt.Errorf("route to %v: %w", remote, err)
	}
	if len(rs) == 0 || rs[0].LinkIndex == 0 {
		return 0, fmt.Errorf("route to %v: no output interface", remote)
	}
	return rs[0].LinkIndex, nil
}
