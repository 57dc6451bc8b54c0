package ipvs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"syscall"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// DryRun is a Backend that keeps the table in memory and, for each
// change, writes the equivalent ipvsadm command line (one per line) to a
// writer and logs it at Info. It answers like the kernel: adding what
// exists fails with EEXIST, touching what does not exist with ENOENT (a
// destination's missing service with ESRCH). Safe for concurrent use.
type DryRun struct {
	log *slog.Logger

	mu sync.Mutex
	w  io.Writer
	t  table
}

var _ Backend = (*DryRun)(nil)

// NewDryRun returns an empty DryRun table printing to w (nil: print
// nothing) and logging to log (nil: no logs).
func NewDryRun(log *slog.Logger, w io.Writer) *DryRun {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if w == nil {
		w = io.Discard
	}
	return &DryRun{log: log.With("component", "ipvs-dry-run"), w: w, t: make(table)}
}

// emit prints and logs one command. d.mu must be held.
func (d *DryRun) emit(cmd string) {
	fmt.Fprintln(d.w, cmd)
	d.log.Info("ipvs dry run", "cmd", cmd)
}

// Services returns a copy of every service, in a stable order.
func (d *DryRun) Services(_ context.Context) ([]Service, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Service, 0, len(d.t))
	for _, id := range sortedServiceIDs(d.t) {
		s := d.t[id].svc
		s.Flags = slices.Clone(s.Flags)
		out = append(out, s)
	}
	return out, nil
}

// Destinations returns a copy of the destinations of svc, in address
// order.
func (d *DryRun) Destinations(_ context.Context, svc config.ServiceKey) ([]Destination, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.t[serviceID(svc)]
	if ts == nil {
		return nil, fmt.Errorf("destinations of %s: %w", svc, syscall.ESRCH)
	}
	keys := make([]destKey, 0, len(ts.dests))
	for k := range ts.dests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareDestKeys)
	out := make([]Destination, 0, len(keys))
	for _, k := range keys {
		d, _ := ts.dests.get(k)
		out = append(out, d)
	}
	return out, nil
}

// AddService adds svc (ipvsadm -A).
func (d *DryRun) AddService(_ context.Context, svc Service) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := serviceID(svc.ServiceKey)
	if d.t[id] != nil {
		return fmt.Errorf("add service %s: %w", svc.ServiceKey, syscall.EEXIST)
	}
	svc.Flags = canonicalFlags(svc.Flags)
	d.t.service(svc)
	d.emit(ipvsadmServiceCmd("-A", svc))
	return nil
}

// UpdateService changes the settings of svc (ipvsadm -E).
func (d *DryRun) UpdateService(_ context.Context, svc Service) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.t[serviceID(svc.ServiceKey)]
	if ts == nil {
		return fmt.Errorf("update service %s: %w", svc.ServiceKey, syscall.ENOENT)
	}
	svc.Flags = canonicalFlags(svc.Flags)
	ts.svc = svc
	d.emit(ipvsadmServiceCmd("-E", svc))
	return nil
}

// DeleteService deletes svc and its destinations (ipvsadm -D).
func (d *DryRun) DeleteService(_ context.Context, svc config.ServiceKey) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := serviceID(svc)
	if d.t[id] == nil {
		return fmt.Errorf("delete service %s: %w", svc, syscall.ENOENT)
	}
	delete(d.t, id)
	d.emit("ipvsadm -D " + ipvsadmService(svc))
	return nil
}

// AddDestination adds dst to svc (ipvsadm -a).
func (d *DryRun) AddDestination(_ context.Context, svc config.ServiceKey, dst Destination) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.t[serviceID(svc)]
	if ts == nil {
		return fmt.Errorf("add destination to %s: %w", svc, syscall.ESRCH)
	}
	k := keyOf(dst)
	if _, ok := ts.dests[k]; ok {
		return fmt.Errorf("add destination %s to %s: %w", addrPort(k.Addr, k.Port), svc, syscall.EEXIST)
	}
	dst.Addr = k.Addr
	ts.dests.put(dst)
	d.emit(ipvsadmDestCmd("-a", svc, dst))
	return nil
}

// UpdateDestination changes dst in svc (ipvsadm -e).
func (d *DryRun) UpdateDestination(_ context.Context, svc config.ServiceKey, dst Destination) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.t[serviceID(svc)]
	if ts == nil {
		return fmt.Errorf("update destination in %s: %w", svc, syscall.ESRCH)
	}
	k := keyOf(dst)
	if _, ok := ts.dests[k]; !ok {
		return fmt.Errorf("update destination %s in %s: %w", addrPort(k.Addr, k.Port), svc, syscall.ENOENT)
	}
	dst.Addr = k.Addr
	ts.dests.put(dst)
	d.emit(ipvsadmDestCmd("-e", svc, dst))
	return nil
}

// DeleteDestination removes dst from svc (ipvsadm -d).
func (d *DryRun) DeleteDestination(_ context.Context, svc config.ServiceKey, dst Destination) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.t[serviceID(svc)]
	if ts == nil {
		return fmt.Errorf("delete destination from %s: %w", svc, syscall.ESRCH)
	}
	k := keyOf(dst)
	if _, ok := ts.dests[k]; !ok {
		return fmt.Errorf("delete destination %s from %s: %w", addrPort(k.Addr, k.Port), svc, syscall.ENOENT)
	}
	delete(ts.dests, k)
	d.emit("ipvsadm -d " + ipvsadmService(svc) + " -r " + addrPort(k.Addr, k.Port))
	return nil
}

// SetOutput replaces the writer commands are printed to (nil: print
// nothing).
func (d *DryRun) SetOutput(w io.Writer) {
	if w == nil {
		w = io.Discard
	}
	d.mu.Lock()
	d.w = w
	d.mu.Unlock()
}

// Close does nothing; it satisfies Backend.
func (d *DryRun) Close() error { return nil }

// SetTimeouts records the connection timeouts (ipvsadm --set).
func (d *DryRun) SetTimeouts(_ context.Context, t Timeouts) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.emit(ipvsadmTimeouts(t))
	return nil
}
