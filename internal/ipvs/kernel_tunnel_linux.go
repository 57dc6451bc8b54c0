//go:build linux

package ipvs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// writeTunnelDest adds ("add") or edits ("update") d, a TUN destination
// with tunnel options, in svc over Kernel's own generic-netlink socket.
// The caller holds no lock; k.mu is taken here.
func (k *Kernel) writeTunnelDest(verb string, svc config.ServiceKey, d Destination) error {
	cmd := uint8(ipvsCmdNewDest)
	if verb == "update" {
		cmd = ipvsCmdSetDest
	}
	sa, err := serviceKeyAttr(svc)
	if err != nil {
		return fmt.Errorf("%s destination: %w", verb, err)
	}
	da, err := destAttr(d)
	if err != nil {
		return fmt.Errorf("%s destination in %s: %w", verb, svc, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.gn.request(cmd, 0, sa, da); err != nil {
		return fmt.Errorf("%s destination %s in %s: %w", verb, addrPort(d.Addr, d.Port), svc, err)
	}
	return nil
}

// readTunnels fills in the tunnel options of the TUN destinations in ds,
// read from the kernel with a GET_DEST dump of svc (moby/ipvs drops
// those attributes). A destination that left the table between the two
// reads keeps no tunnel options. The caller holds k.mu.
func (k *Kernel) readTunnels(svc config.ServiceKey, ds []Destination) error {
	sa, err := serviceKeyAttr(svc)
	if err != nil {
		return err
	}
	replies, err := k.gn.request(ipvsCmdGetDest, unix.NLM_F_DUMP, sa)
	if err != nil {
		return fmt.Errorf("read tunnel options: %w", err)
	}
	fam := serviceID(svc).Family
	tunnels := make(map[destKey]*config.Tunnel, len(replies))
	for _, r := range replies {
		key, t, err := decodeDestTunnel(r, fam)
		if err != nil {
			return err
		}
		tunnels[key] = t
	}
	for i := range ds {
		if ds[i].Method == config.TUN {
			ds[i].Tunnel = tunnels[keyOf(ds[i])]
		}
	}
	return nil
}
