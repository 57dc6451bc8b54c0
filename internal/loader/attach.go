package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// attachment is one interface the receiver is attached to.
type attachment struct {
	prog    string // the program's name and the hook (tcx or clsact) in the status metrics; "" records nothing
	hook    string
	ifindex int
	tcx     link.Link          // set when attached with TCX
	filter  *netlink.BpfFilter // set when attached through clsact
}

func (a attachment) detach() error {
	if a.prog != "" {
		recordAttach(a.prog, a.hook, -1)
	}
	if a.tcx != nil {
		if err := a.tcx.Close(); err != nil {
			return fmt.Errorf("detach tcx from %d: %w", a.ifindex, err)
		}
		return nil
	}
	if err := netlink.FilterDel(a.filter); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete tc filter on %d: %w", a.ifindex, err)
	}
	return nil
}

// Attach attaches the receiver to the ingress of the interface with the
// given index, in the network namespace of the calling thread. It uses
// TCX where the kernel has it (6.6+) and a clsact qdisc with a
// direct-action filter otherwise, and returns which one it used
// ("tcx" or "clsact").
func (s *SynProbe) Attach(ifindex int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrClosed
	}
	if !s.opts.ForceClsact {
		// At the head of the chain, whatever is attached already: it
		// passes every packet on (TC_ACT_UNSPEC), where a program before
		// it returning TC_ACT_OK (the passive observer's, attached first
		// to a link a reload added) would hide the answers from it. The
		// clsact fallback gets the same order from its priority (1).
		l, err := link.AttachTCX(link.TCXOptions{
			Interface: ifindex,
			Program:   s.program(),
			Anchor:    link.Head(),
			Attach:    ebpf.AttachTCXIngress,
		})
		if err == nil {
			s.attached = append(s.attached, attachment{prog: synprobeName, hook: "tcx", ifindex: ifindex, tcx: l})
			recordAttach(synprobeName, "tcx", 1)
			return "tcx", nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return "", fmt.Errorf("attach tcx to %d: %w", ifindex, err)
		}
		s.log.Info("TCX not available, attaching through clsact", "ifindex", ifindex)
	}
	f, err := attachClsact(ifindex, s.program())
	if err != nil {
		return "", err
	}
	s.attached = append(s.attached, attachment{prog: synprobeName, hook: "clsact", ifindex: ifindex, filter: f})
	recordAttach(synprobeName, "clsact", 1)
	return "clsact", nil
}

// attachClsact adds (or reuses) a clsact qdisc on ifindex and a
// direct-action BPF filter on its ingress hook.
func attachClsact(ifindex int, prog *ebpf.Program) (*netlink.BpfFilter, error) {
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := netlink.QdiscReplace(q); err != nil {
		return nil, fmt.Errorf("add clsact to %d: %w", ifindex, err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    1,
			Protocol:  unix.ETH_P_ALL,
			Priority:  1,
		},
		Fd:           prog.FD(),
		Name:         "lvsprobe_synprobe",
		DirectAction: true,
	}
	if err := netlink.FilterReplace(f); err != nil {
		return nil, fmt.Errorf("add tc filter to %d: %w", ifindex, err)
	}
	return f, nil
}
