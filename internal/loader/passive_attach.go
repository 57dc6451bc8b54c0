package loader

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// passiveFilterPrefix names the clsact filters of the passive programs,
// so that a restart finds and removes those a killed process left.
const passiveFilterPrefix = "lvsprobe_passive"

// passivePriority is the clsact filter priority of the passive programs,
// apart from the SYN-probe receiver's (1).
const passivePriority = 0x4c50

// passiveAttachment is one link the TC programs are attached to.
type passiveAttachment struct {
	ifindex int
	tcx     []link.Link          // ingress and egress, when attached with TCX
	filters []*netlink.BpfFilter // ingress and egress, when attached through clsact
}

func (a passiveAttachment) detach() error {
	var errs []error
	for _, l := range a.tcx {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach tcx from %d: %w", a.ifindex, err))
		}
	}
	for _, f := range a.filters {
		if err := netlink.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete tc filter on %d: %w", a.ifindex, err))
		}
	}
	return errors.Join(errs...)
}

// Attach attaches the TC programs to the ingress and egress of the link
// with the given index (in the calling thread's network namespace),
// first removing passive filters a previous process left there. It uses
// TCX where the kernel has it (6.6+; the links die with the process) and
// a clsact qdisc with direct-action filters otherwise, and returns which
// ("tcx" or "clsact"). Attaching twice to one link is a no-op.
func (p *Passive) Attach(ifindex int) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return "", ErrClosed
	}
	for _, a := range p.attached {
		if a.ifindex == ifindex {
			if a.tcx != nil {
				return "tcx", nil
			}
			return "clsact", nil
		}
	}
	if n, err := RemoveStalePassiveFilters(ifindex); err != nil {
		return "", err
	} else if n > 0 {
		p.log.Info("removed stale passive tc filters", "ifindex", ifindex, "count", n)
	}
	if !p.opts.ForceClsact {
		a, err := attachPassiveTCX(ifindex, p.tc.PassiveIngress, p.tc.PassiveEgress)
		if err == nil {
			p.attached = append(p.attached, a)
			return "tcx", nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return "", err
		}
		p.log.Info("TCX not available, attaching through clsact", "ifindex", ifindex)
	}
	a := passiveAttachment{ifindex: ifindex}
	for _, h := range []struct {
		parent uint32
		prog   *ebpf.Program
		name   string
	}{
		{netlink.HANDLE_MIN_INGRESS, p.tc.PassiveIngress, passiveFilterPrefix + "_ingress"},
		{netlink.HANDLE_MIN_EGRESS, p.tc.PassiveEgress, passiveFilterPrefix + "_egress"},
	} {
		f, err := addClsactFilter(ifindex, h.parent, h.prog, h.name)
		if err != nil {
			a.detach()
			return "", err
		}
		a.filters = append(a.filters, f)
	}
	p.attached = append(p.attached, a)
	return "clsact", nil
}

// attachPassiveTCX attaches both programs with TCX.
func attachPassiveTCX(ifindex int, ingress, egress *ebpf.Program) (passiveAttachment, error) {
	a := passiveAttachment{ifindex: ifindex}
	for _, h := range []struct {
		prog *ebpf.Program
		at   ebpf.AttachType
	}{{ingress, ebpf.AttachTCXIngress}, {egress, ebpf.AttachTCXEgress}} {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: h.prog, Attach: h.at})
		if err != nil {
			a.detach()
			return passiveAttachment{}, fmt.Errorf("attach tcx to %d: %w", ifindex, err)
		}
		a.tcx = append(a.tcx, l)
	}
	return a, nil
}

// addClsactFilter adds (or reuses) the clsact qdisc of ifindex and a
// named direct-action filter on one of its hooks.
func addClsactFilter(ifindex int, parent uint32, prog *ebpf.Program, name string) (*netlink.BpfFilter, error) {
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscReplace(q); err != nil {
		return nil, fmt.Errorf("add clsact to %d: %w", ifindex, err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    parent,
			Handle:    1,
			Protocol:  unix.ETH_P_ALL,
			Priority:  passivePriority,
		},
		Fd:           prog.FD(),
		Name:         name,
		DirectAction: true,
	}
	if err := netlink.FilterReplace(f); err != nil {
		return nil, fmt.Errorf("add tc filter %s to %d: %w", name, ifindex, err)
	}
	return f, nil
}

// RemoveStalePassiveFilters deletes the passive programs' clsact filters
// from both hooks of the link (a killed process cannot remove its own)
// and returns how many it removed. A link without clsact has none.
func RemoveStalePassiveFilters(ifindex int) (int, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return 0, fmt.Errorf("find link %d: %w", ifindex, err)
	}
	n := 0
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := netlink.FilterList(l, parent)
		if err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				continue // no clsact qdisc
			}
			return n, fmt.Errorf("list tc filters of %d: %w", ifindex, err)
		}
		for _, f := range fs {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok || !strings.HasPrefix(bf.Name, passiveFilterPrefix) {
				continue
			}
			if err := netlink.FilterDel(bf); err != nil && !errors.Is(err, unix.ENOENT) {
				return n, fmt.Errorf("delete stale tc filter on %d: %w", ifindex, err)
			}
			n++
		}
	}
	return n, nil
}
