//go:build linux

package ipvs

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// writeDest sends the destination command cmd (add, edit or delete, as
// verb names it) for d in svc.
func (k *Kernel) writeDest(ctx context.Context, verb string, cmd uint8, svc config.ServiceKey, d Destination) error {
	if err := ctx.Err(); err != nil {
		return err
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

// listDests returns the destinations of svc, tunnel options included,
// from a GET_DEST dump (moby/ipvs drops the tunnel attributes). The
// caller holds k.mu.
func (k *Kernel) listDests(svc config.ServiceKey) ([]Destination, error) {
	sa, err := serviceKeyAttr(svc)
	if err != nil {
		return nil, err
	}
	replies, err := k.gn.request(ipvsCmdGetDest, unix.NLM_F_DUMP, sa)
	if err != nil {
		return nil, err
	}
	fam := serviceID(svc).Family
	out := make([]Destination, 0, len(replies))
	for _, r := range replies {
		d, err := decodeDest(r, fam)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
