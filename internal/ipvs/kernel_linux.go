//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"

	mobyipvs "github.com/moby/ipvs"
	"github.com/vishvananda/netlink"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Kernel is the Backend over the running kernel's IPVS table, over
// generic netlink, in the network namespace
// that was current on the calling thread when NewKernel ran. Every kernel
// call is serialised under one mutex. Errors wrap the kernel's errno
// (errors.Is(err, syscall.EEXIST) works).
//
// moby/ipvs v1.1.0 has no tunnel-type attributes (gue, gre, port,
// checksum), so Kernel writes and lists destinations itself over its own
// generic-netlink socket (see destAttr and listDests); services and
// timeouts go through moby/ipvs. A limit of moby/ipvs that shows here:
// the persistence engine is not read back, so Services reports the
// engine this Kernel last set on a service (empty after a restart: the
// reconciler then sets it again, which drops nothing).
type Kernel struct {
	log *slog.Logger

	mu sync.Mutex
	h  *mobyipvs.Handle
	gn *genlConn                    // for the tunnel attributes moby/ipvs lacks
	pe map[config.ServiceKey]string // persistence engines set, by serviceID
}

var _ Backend = (*Kernel)(nil)

// NewKernel opens the IPVS generic-netlink channel. It returns an error
// wrapping ErrNoIPVS when the kernel has no IPVS family, after one
// attempt to load the ip_vs module with modprobe (moby/ipvs itself would
// only log that and return a handle on which every call fails).
func NewKernel(log *slog.Logger) (*Kernel, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fam, err := ipvsFamilyID()
	if err != nil {
		if out, merr := exec.Command("modprobe", "ip_vs").CombinedOutput(); merr != nil {
			log.Debug("modprobe ip_vs failed", "error", merr, "output", string(out))
		}
		if fam, err = ipvsFamilyID(); err != nil {
			return nil, err
		}
	}
	h, err := mobyipvs.New("")
	if err != nil {
		return nil, fmt.Errorf("open ipvs netlink: %w", err)
	}
	gn, err := openGenl(fam)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open ipvs netlink: %w", err)
	}
	return &Kernel{log: log.With("component", "ipvs-kernel"), h: h, gn: gn, pe: make(map[config.ServiceKey]string)}, nil
}

// ipvsFamilyPresent returns nil when the generic-netlink family "IPVS"
// exists, or an error wrapping ErrNoIPVS.
func ipvsFamilyPresent() error {
	_, err := ipvsFamilyID()
	return err
}

// ipvsFamilyID returns the id of the generic-netlink family "IPVS", or an
// error wrapping ErrNoIPVS.
func ipvsFamilyID() (uint16, error) {
	f, err := netlink.GenlFamilyGet("IPVS")
	if err != nil {
		return 0, fmt.Errorf("look up generic netlink family IPVS: %w", errors.Join(ErrNoIPVS, err))
	}
	return f.ID, nil
}

// Services returns every service in the table.
func (k *Kernel) Services(ctx context.Context) ([]Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ms, err := k.h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := make([]Service, 0, len(ms))
	for _, m := range ms {
		s := fromMobyService(m)
		if s.PEName == "" {
			s.PEName = k.pe[serviceID(s.ServiceKey)]
		}
		out = append(out, s)
	}
	return out, nil
}

// Destinations returns the destinations of svc.
func (k *Kernel) Destinations(ctx context.Context, svc config.ServiceKey) ([]Destination, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ds, err := k.listDests(svc)
	if err != nil {
		return nil, fmt.Errorf("list destinations of %s: %w", svc, err)
	}
	return ds, nil
}

// AddService adds svc.
func (k *Kernel) AddService(ctx context.Context, svc Service) error {
	return k.writeService(ctx, "add", svc, (*mobyipvs.Handle).NewService)
}

// UpdateService changes the settings of svc.
func (k *Kernel) UpdateService(ctx context.Context, svc Service) error {
	return k.writeService(ctx, "update", svc, (*mobyipvs.Handle).UpdateService)
}

func (k *Kernel) writeService(ctx context.Context, verb string, svc Service, call func(*mobyipvs.Handle, *mobyipvs.Service) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := toMobyService(svc)
	if err != nil {
		return fmt.Errorf("%s service: %w", verb, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := call(k.h, m); err != nil {
		return fmt.Errorf("%s service %s: %w", verb, svc.ServiceKey, err)
	}
	k.pe[serviceID(svc.ServiceKey)] = svc.PEName
	return nil
}

// DeleteService deletes svc and its destinations.
func (k *Kernel) DeleteService(ctx context.Context, svc config.ServiceKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := toMobyKey(svc)
	if err != nil {
		return fmt.Errorf("delete service: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.h.DelService(m); err != nil {
		return fmt.Errorf("delete service %s: %w", svc, err)
	}
	delete(k.pe, serviceID(svc))
	return nil
}

// AddDestination adds d to svc.
func (k *Kernel) AddDestination(ctx context.Context, svc config.ServiceKey, d Destination) error {
	return k.writeDest(ctx, "add", ipvsCmdNewDest, svc, d)
}

// UpdateDestination changes d in svc.
func (k *Kernel) UpdateDestination(ctx context.Context, svc config.ServiceKey, d Destination) error {
	return k.writeDest(ctx, "update", ipvsCmdSetDest, svc, d)
}

// DeleteDestination removes d from svc.
func (k *Kernel) DeleteDestination(ctx context.Context, svc config.ServiceKey, d Destination) error {
	d.Method, d.Tunnel = config.NAT, nil // only the address and port matter
	return k.writeDest(ctx, "delete", ipvsCmdDelDest, svc, d)
}

// Close releases the netlink socket.
func (k *Kernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.h != nil {
		k.h.Close()
		k.h = nil
	}
	k.gn.close()
	return nil
}

// SetTimeouts sets the connection timeouts of the namespace (a zero
// field leaves that timeout unchanged, as the kernel treats 0).
func (k *Kernel) SetTimeouts(ctx context.Context, t Timeouts) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.h.SetConfig(&mobyipvs.Config{TimeoutTCP: t.TCP, TimeoutTCPFin: t.TCPFin, TimeoutUDP: t.UDP}); err != nil {
		return fmt.Errorf("set timeouts: %w", err)
	}
	return nil
}
