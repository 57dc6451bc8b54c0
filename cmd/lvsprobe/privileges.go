package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/lvsprobe/lvsprobe/internal/caps"
	"github.com/lvsprobe/lvsprobe/internal/config"
)

// What `lvsprobe run` keeps once it has started (sockets open, eBPF loaded
// and attached, IPVS netlink open, control socket bound, scripts
// resolved). Every capability kept is one a later step can need: a reload
// (new targets, links or scripts), a check run at any time, or the stop.
// Everything else goes from the effective, permitted, inheritable,
// ambient and (with CAP_SETPCAP) bounding sets of every thread.
var keptAlways = []keptCap{
	{caps.NetAdmin, "IPVS over generic netlink (every change, the stop's flush); attaching the SYN receiver and passive programs to links a reload adds and detaching clsact filters at stop; SO_MARK for checks with fwmark; giving ip_local_reserved_ports back at stop"},
	{caps.NetRaw, "raw and packet sockets the SYN prober opens for targets a reload adds (the first IPv6 target, frames); PING_CHECK's raw socket where ping sockets are refused"},
	{caps.NetBindService, "checks with a bind_port below ip_unprivileged_port_start, and a --metrics-listen port below it that was in use at start and is retried"},
}

// keptCap is a capability kept after start-up, and why.
type keptCap struct {
	c   caps.Cap
	why string
}

// keptCapabilities returns what `lvsprobe run` keeps after start-up: the
// capabilities it always keeps, CAP_BPF while eBPF programs are in use
// (bpf() on their maps: kernels before 6.5 allow none without it when
// unprivileged eBPF is disabled, as Debian's is), the script capabilities
// when cfg runs scripts, and extra (--keep-capabilities).
func keptCapabilities(cfg *config.Config, bpfInUse bool, extra caps.Set) []keptCap {
	kept := append([]keptCap(nil), keptAlways...)
	if bpfInUse {
		kept = append(kept, keptCap{caps.BPF, "reading and updating the maps of the loaded eBPF programs (before Linux 6.5 every bpf() call needs it)"})
		if caps.BPF > caps.Last() {
			kept = append(kept, keptCap{caps.SysAdmin, "this kernel has no CAP_BPF: bpf() needs CAP_SYS_ADMIN"})
		}
	}
	if hasScripts(cfg) {
		kept = append(kept,
			keptCap{caps.SetUID, "starting notify, quorum and MISC_CHECK scripts as their user"},
			keptCap{caps.SetGID, "starting notify, quorum and MISC_CHECK scripts as their group"},
			keptCap{caps.Kill, "killing a script of another user that outlives its timeout"})
	}
	for _, c := range extra.Caps() {
		kept = append(kept, keptCap{c, "--keep-capabilities"})
	}
	return kept
}

// hasScripts reports whether cfg runs any script: notify_up/down,
// quorum_up/down or MISC_CHECK.
func hasScripts(cfg *config.Config) bool {
	for _, vs := range cfg.VirtualServers {
		if vs.QuorumUp != nil || vs.QuorumDown != nil {
			return true
		}
		for _, rs := range vs.RealServers {
			if rs.NotifyUp != nil || rs.NotifyDown != nil {
				return true
			}
			for _, c := range rs.Checkers {
				if c.Type == config.MiscCheck {
					return true
				}
			}
		}
	}
	return false
}

// parseKeepCapabilities parses --keep-capabilities: "all" (drop
// nothing), "" or a list of capability names.
func parseKeepCapabilities(s string) (all bool, extra caps.Set, err error) {
	if strings.TrimSpace(strings.ToLower(s)) == "all" {
		return true, 0, nil
	}
	extra, err = caps.Parse(s)
	if err != nil {
		return false, 0, fmt.Errorf("--keep-capabilities: %w", err)
	}
	return false, extra, nil
}

// dropCapabilities narrows the process to keptCapabilities and logs what
// it kept and dropped. A failure is logged, not fatal: the checks matter
// more than the hardening.
func dropCapabilities(log *slog.Logger, keepFlag string, cfg *config.Config, bpfInUse bool) {
	all, extra, _ := parseKeepCapabilities(keepFlag) // checked with the flags
	if all {
		log.Info("capabilities kept (--keep-capabilities=all)")
		return
	}
	kept := keptCapabilities(cfg, bpfInUse, extra)
	var keep caps.Set
	for _, k := range kept {
		keep |= caps.Of(k.c)
	}
	res, err := caps.Restrict(keep)
	if err != nil {
		if errors.Is(err, caps.ErrCgo) {
			log.Warn("capabilities not dropped after start-up", "error", err)
			return
		}
		log.Error("capabilities not dropped after start-up", "error", err)
		return
	}
	log.Info("capabilities dropped after start-up", "kept", res.After.Permitted.String(),
		"dropped", (res.Before.Permitted &^ res.After.Permitted).String(), "bounding", res.After.Bounding.String())
	if res.BoundingKept {
		log.Debug("bounding set left as started (no CAP_SETPCAP)", "bounding", res.After.Bounding.String())
	}
	for _, k := range kept {
		if res.After.Permitted.Has(k.c) {
			log.Debug("capability kept", "capability", k.c.String(), "why", k.why)
		}
	}
}

// usesBPF reports whether the SYN prober receives through its eBPF
// program (and so reads its maps for as long as it runs).
func (s *synProbe) usesBPF() bool { return s != nil && s.p.Receiver() == "ebpf" }
