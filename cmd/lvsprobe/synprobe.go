package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/prober"
	"github.com/lvsprobe/lvsprobe/internal/prober/synprobe"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// synFlags are the SYN prober's flags of `lvsprobe run`. They are flags,
// not configuration: keepalived.conf stays a file keepalived accepts.
type synFlags struct {
	enabled  bool
	interval time.Duration
	pps      int
	ports    string
	frames   bool
	rst      bool
}

// register adds the flags to fs with their defaults.
func (f *synFlags) register(fs *flag.FlagSet) {
	d := synprobe.DefaultConfig()
	fs.BoolVar(&f.enabled, "syn-probe", true, "send stateless SYN probes to every TCP real server between full checks")
	fs.DurationVar(&f.interval, "syn-probe-interval", d.Interval, "SYN probe `interval` per target")
	fs.IntVar(&f.pps, "syn-probe-pps", d.PPS, "SYN probes per second at most, over all targets")
	fs.StringVar(&f.ports, "syn-probe-ports", fmt.Sprintf("%d-%d", d.PortLo, d.PortHi),
		"source `range` reserved for SYN probes (ip_local_reserved_ports)")
	fs.BoolVar(&f.frames, "syn-probe-frames", true, "send SYN probes as prebuilt Ethernet frames where the neighbour is resolved "+
		"(false: through raw sockets only, which conntrack sees; needed where the firewall drops conntrack-invalid packets)")
	fs.BoolVar(&f.rst, "syn-probe-rst", true, "the eBPF receiver answers each SYN-ACK with the RST itself and drops RSTs to probes, "+
		"so the director's stack never sees a probe answer (false: the stack receives them and sends the RST)")
}

// check reports what is wrong with the flags' values.
func (f *synFlags) check() error {
	if f.interval <= 0 {
		return errors.New("--syn-probe-interval must be positive")
	}
	if f.pps <= 0 {
		return errors.New("--syn-probe-pps must be positive")
	}
	if _, _, err := parsePortRange(f.ports); err != nil {
		return fmt.Errorf("--syn-probe-ports: %w", err)
	}
	return nil
}

// parsePortRange parses "LO-HI" (or a single port) into an inclusive,
// non-empty range of non-zero ports.
func parsePortRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	l, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("parse port range %q: %w", s, err)
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(b, 10, 16); err != nil {
			return 0, 0, fmt.Errorf("parse port range %q: %w", s, err)
		}
	}
	if l == 0 || h < l {
		return 0, 0, fmt.Errorf("parse port range %q: empty or includes port 0", s)
	}
	return uint16(l), uint16(h), nil
}

// missThreshold is the number of consecutive misses at which a target's
// silence is logged.
const missThreshold = 3

// synProbe runs the SYN prober beside the full checks. Its signals are
// only logged for now: the failure detector that acts on them is still
// to come, and IPVS never changes on their word alone. A nil *synProbe
// (probing off or impossible) does nothing.
type synProbe struct {
	log    *slog.Logger
	p      *synprobe.Prober
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex                                // serialises updates; the targets probed are the prober's own (p.Targets)
	rsOf map[netip.AddrPort][]config.RealServerKey // the real servers each stands for, kept only for debug logging

	det atomic.Pointer[prober.Detector] // the failure detector fed by the signals, if any (detector.go)
	evs []prober.Evidence               // consume's scratch
}

// startSynProbe starts probing the TCP real servers of cfg. Where probing
// is off, or the kernel or the privileges do not allow it, it logs why
// (one warning) and returns nil: lvsprobe then runs its full checks only.
func startSynProbe(ctx context.Context, log *slog.Logger, f synFlags, cfg *config.Config, reg prometheus.Registerer) *synProbe {
	log = log.With("component", "synprobe")
	if !f.enabled {
		log.Info("SYN probes off (--syn-probe=false)")
		return nil
	}
	lo, hi, _ := parsePortRange(f.ports) // checked with the flags
	p, err := synprobe.New(synprobe.Config{
		PortLo: lo, PortHi: hi,
		Interval:   f.interval,
		PPS:        f.pps,
		RawSockets: !f.frames,
		KernelRST:  !f.rst,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		log.Warn("SYN probes unavailable; running full checks only", "error", err)
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &synProbe{log: log, p: p, cancel: cancel}
	if err := s.update(cfg); err != nil {
		log.Warn("SYN probes unavailable; running full checks only", "error", err)
		cancel()
		if err := p.Close(); err != nil {
			log.Warn("close SYN prober", "error", err)
		}
		return nil
	}
	log.Info("SYN probes on", "receiver", p.Receiver(), "targets", p.Len(),
		"interval", f.interval, "pps", f.pps, "ports", f.ports)
	if need := float64(p.Len()) / f.interval.Seconds(); need > float64(f.pps) {
		log.Warn("SYN probe cap below what the targets need: probes will be further apart than --syn-probe-interval",
			"needed_pps", int(need), "pps", f.pps)
	}
	s.wg.Go(func() {
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("SYN prober stopped; running full checks only", "error", err)
		}
	})
	s.wg.Go(func() { s.consume(ctx) })
	return s
}

// update makes the probed set that of cfg, adding and removing only what
// changed. It fails only where raw sockets are not permitted at all; a
// target that cannot be probed (no route, say) is logged and left out.
func (s *synProbe) update(cfg *config.Config) error {
	if s == nil {
		return nil
	}
	targets, skipped := synprobe.TargetsFromConfig(cfg)
	for _, sk := range skipped {
		s.log.Debug("not SYN-probed", "real_server", sk.RealServer.String(), "at", sk.Pos.String(), "reason", sk.Reason)
	}
	want := make(map[netip.AddrPort][]config.RealServerKey, len(targets))
	for _, t := range targets {
		want[netip.AddrPortFrom(t.Addr.Addr().Unmap(), t.Addr.Port())] = t.RealServers // as the prober keys them
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Which real servers a target stands for is only logged at debug
	// level: the map cost 1.5 MB at 10,000 targets (docs/benchmarks.md §8.9).
	s.rsOf = nil
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.rsOf = want
	}
	removed, added, failed := 0, 0, 0
	// The prober's own targets are the set probed: a second set here was
	// 0.8 MB at 10,000 (docs/benchmarks.md §8.9).
	for _, a := range s.p.Targets() {
		if _, ok := want[a]; !ok {
			s.p.Remove(a)
			removed++
		}
	}
	var firstErr error
	for a := range want {
		if s.p.Has(a) {
			continue
		}
		if err := s.p.Add(a, 0); err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				return err // no raw sockets: nothing can be probed
			}
			failed++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		added++
	}
	if failed > 0 {
		s.log.Warn("some targets cannot be SYN-probed", "count", failed, "first_error", firstErr)
	}
	s.log.Debug("SYN probe targets updated", "added", added, "removed", removed, "targets", s.p.Len())
	return nil
}

// realServers returns the real servers a target stands for (known only
// while debug logging is on, the one use of it).
func (s *synProbe) realServers(a netip.AddrPort) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.rsOf[a]))
	for _, k := range s.rsOf[a] {
		out = append(out, k.String())
	}
	return out
}

// consume reads the prober's signals until ctx is done and logs, at debug
// level, each target's changes: a RST after anything else (nothing
// listens), a SYN-ACK after anything else (something listens again), and
// misses reaching missThreshold in a row (silence).
func (s *synProbe) consume(ctx context.Context) {
	last := map[netip.AddrPort]synprobe.Kind{} // the newest answer's kind
	for {
		var batch []synprobe.Signal
		select {
		case <-ctx.Done():
			return
		case batch = <-s.p.Signals():
		}
		s.observe(batch)
		if !s.log.Enabled(ctx, slog.LevelDebug) {
			s.p.Recycle(batch) // observe keeps nothing of it
			continue           // the map of every target's last answer is kept only for these debug lines
		}
		for _, sig := range batch {
			if sig.Kind == synprobe.Miss {
				if sig.ConsecutiveMisses != missThreshold {
					continue
				}
			} else {
				if last[sig.Target] == sig.Kind {
					continue
				}
				last[sig.Target] = sig.Kind
			}
			s.log.Debug("SYN probe signal changed", "target", sig.Target.String(), "signal", sig.Kind.String(),
				"consecutive_misses", sig.ConsecutiveMisses, "rtt", sig.RTT, "real_servers", s.realServers(sig.Target))
		}
		s.p.Recycle(batch)
	}
}

// stop stops probing, detaches the receiver and gives the reserved
// source ports back.
func (s *synProbe) stop() {
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
	if err := s.p.Close(); err != nil {
		s.log.Warn("close SYN prober", "error", err)
		return
	}
	s.log.Debug("SYN prober closed: receiver detached, source ports released")
}
