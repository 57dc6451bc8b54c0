package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/lvsprobe/lvsprobe/internal/prober"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
)

// passiveFlags are the passive observer's flags of `lvsprobe run`.
type passiveFlags struct {
	mode     string        // auto or off
	links    string        // comma-separated interface names; "" means the links that route to the real servers
	interval time.Duration // how often the counters are read
	sample   int           // time 1 client handshake in this many (loader.PassiveOptions.HandshakeSample)
}

// register adds the flags to fs with their defaults.
func (f *passiveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.mode, "passive", "auto", "eBPF passive observation of client traffic and of lvsprobe's own connections: "+
		"auto (on where the kernel allows, warning once where not) or off")
	fs.StringVar(&f.links, "passive-links", "", "comma-separated `interfaces` facing the real servers (default: those that route to them)")
	fs.DurationVar(&f.interval, "passive-interval", time.Second, "how often the passive counters are read and handed to the failure detector")
	fs.IntVar(&f.sample, "passive-sample", loader.DefaultHandshakeSample, "time 1 client handshake in `N` (a power of two; 1 times every one, 0 means the default) for the handshake latency: "+
		"the precise clock is most of a SYN's cost on the forwarding path; every handshake is still watched for retransmission and refusal")
}

// check reports what is wrong with the flags' values.
func (f *passiveFlags) check() error {
	if f.mode != "auto" && f.mode != "off" {
		return fmt.Errorf("--passive must be auto or off, not %q", f.mode)
	}
	if f.interval <= 0 {
		return errors.New("--passive-interval must be positive")
	}
	if f.sample < 0 || f.sample > loader.MaxHandshakeSample || f.sample&(f.sample-1) != 0 { // 0: the default
		return fmt.Errorf("--passive-sample must be a power of two from 1 to %d, not %d", loader.MaxHandshakeSample, f.sample)
	}
	return nil
}

// passiveObserver runs the passive eBPF observer beside the checks: it
// keeps the observed real servers in step with the running configuration
// and hands what it sees to the failure detector as evidence. A nil
// *passiveObserver (off, or impossible here) does nothing.
type passiveObserver struct {
	log    *slog.Logger
	p      *loader.Passive
	f      passiveFlags
	cancel context.CancelFunc
	wg     sync.WaitGroup
	det    atomic.Pointer[prober.Detector]
	links  map[int]string // ifindex -> name, attached
	cfg    *config.Config // the configuration applied last (follow's goroutine only)
	hadDR  bool           // the last refresh had LVS-DR real servers
}

// startPassive loads and attaches the passive observer for cfg. Where it
// is off or cannot run, it logs why once, sets lvsprobe_passive_available
// to 0 and returns nil: lvsprobe then runs on active checks alone.
func startPassive(ctx context.Context, log *slog.Logger, f passiveFlags, syn synFlags, cfg *config.Config, reg prometheus.Registerer) *passiveObserver {
	log = log.With("component", "passive")
	avail := prometheus.NewGauge(prometheus.GaugeOpts{Name: "lvsprobe_passive_available",
		Help: "1 when the eBPF passive observer runs, 0 when it is off or the kernel or privileges do not allow it."})
	if reg != nil {
		reg.MustRegister(avail)
	}
	if f.mode == "off" {
		log.Info("passive observation off (--passive=off)")
		return nil
	}
	// consume acts on client traffic only: the own connections' counters
	// (every check's) stay out of the deltas and are read for the metrics.
	opts := loader.PassiveOptions{PollInterval: f.interval, HandshakeSample: f.sample, Registerer: reg, Logger: log, ClientDeltasOnly: true}
	if syn.enabled {
		opts.ProbePortLo, opts.ProbePortHi, _ = parsePortRange(syn.ports) // checked with the flags
	}
	if n := len(passiveTargets(cfg)); n > 16384/2 {
		opts.Capacity = 2 * n // room to grow on reload
	}
	p, err := loader.LoadPassive(opts)
	if err != nil {
		log.Warn("passive observation unavailable; running on active checks only", "error", err)
		return nil
	}
	if terr := p.TracepointsErr(); terr != nil {
		log.Warn("passive tracepoints unavailable: lvsprobe's own connections are not observed", "error", terr)
	}
	o := &passiveObserver{log: log, p: p, f: f, links: map[int]string{}}
	if err := o.update(cfg); err != nil {
		log.Warn("passive observation incomplete", "error", err)
	}
	if len(o.links) == 0 {
		// Real servers on loopback only, say: nothing is wrong.
		log.Info("passive observation off: no link routes to a real server")
		if err := p.Close(); err != nil {
			log.Warn("close passive observer", "error", err)
		}
		return nil
	}
	avail.Set(1)
	ctx, o.cancel = context.WithCancel(ctx)
	o.wg.Go(func() {
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("passive observer stopped; running on active checks only", "error", err)
		}
	})
	o.wg.Go(func() { o.consume(ctx) })
	log.Info("passive observation on", "links", slices.Sorted(mapValues(o.links)), "real_servers", len(passiveTargets(cfg)),
		"tracepoints", p.TracepointsErr() == nil, "interval", f.interval)
	return o
}

func mapValues(m map[int]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// passiveTargets returns the TCP real servers of cfg as client traffic
// reaches them (address and port), each once.
func passiveTargets(cfg *config.Config) []netip.AddrPort {
	seen := map[netip.AddrPort]bool{}
	var out []netip.AddrPort
	for _, vs := range cfg.VirtualServers {
		if vs.Protocol != config.TCP {
			continue
		}
		for _, rs := range vs.RealServers {
			port := rs.Port
			if port == 0 {
				port = vs.Port
			}
			ap := netip.AddrPortFrom(rs.Addr.Unmap(), port)
			if port == 0 || seen[ap] {
				continue
			}
			seen[ap] = true
			out = append(out, ap)
		}
	}
	return out
}

// update makes the observed real servers those of cfg and, in auto link
// mode, attaches to any new link that routes to one of them.
func (o *passiveObserver) update(cfg *config.Config) error {
	if o == nil {
		return nil
	}
	o.cfg = cfg
	targets := passiveTargets(cfg)
	var errs []error
	if err := o.p.SetRealServers(targets); err != nil {
		errs = append(errs, err)
	}
	if err := o.refreshDR(); err != nil {
		errs = append(errs, err)
	}
	links, err := o.wantLinks(targets)
	if err != nil {
		errs = append(errs, err)
	}
	for idx, name := range links {
		if _, ok := o.links[idx]; ok {
			continue
		}
		how, err := o.p.Attach(idx)
		if err != nil {
			errs = append(errs, fmt.Errorf("attach to %s: %w", name, err))
			continue
		}
		o.links[idx] = name
		o.log.Debug("passive programs attached", "link", name, "how", how)
	}
	return errors.Join(errs...)
}

// wantLinks returns the links to attach to: --passive-links, or the
// output links of the routes to the targets.
func (o *passiveObserver) wantLinks(targets []netip.AddrPort) (map[int]string, error) {
	out := map[int]string{}
	if o.f.links != "" {
		var errs []error
		for name := range strings.SplitSeq(o.f.links, ",") {
			l, err := netlink.LinkByName(strings.TrimSpace(name))
			if err != nil {
				errs = append(errs, fmt.Errorf("--passive-links %s: %w", name, err))
				continue
			}
			out[l.Attrs().Index] = l.Attrs().Name
		}
		return out, errors.Join(errs...)
	}
	var firstErr error
	asked := map[netip.Addr]bool{} // one route lookup per address, not per real server
	for _, t := range targets {
		if asked[t.Addr()] {
			continue
		}
		asked[t.Addr()] = true
		rs, err := netlink.RouteGet(t.Addr().AsSlice())
		if err != nil || len(rs) == 0 {
			if firstErr == nil {
				firstErr = fmt.Errorf("no route to %s: %w", t.Addr(), err)
			}
			continue
		}
		idx := rs[0].LinkIndex
		if _, ok := out[idx]; ok {
			continue
		}
		l, err := netlink.LinkByIndex(idx)
		if err != nil || l.Attrs().Flags&net.FlagLoopback != 0 {
			continue
		}
		out[idx] = l.Attrs().Name
	}
	return out, firstErr
}

// follow applies every new configuration current returns (the running
// one after a reload), checking every interval, until ctx is done.
func (o *passiveObserver) follow(ctx context.Context, current func() *config.Config) {
	if o == nil {
		return
	}
	o.wg.Go(func() {
		t := time.NewTicker(o.f.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if cfg := current(); cfg != nil && cfg != o.cfg {
				if err := o.update(cfg); err != nil {
					o.log.Warn("passive real servers not fully updated", "error", err)
				}
			} else if err := o.refreshDR(); err != nil {
				o.log.Debug("LVS-DR real servers not refreshed", "error", err)
			}
		}
	})
}

// feedDetector makes the passive signals evidence for det.
func (o *passiveObserver) feedDetector(det *prober.Detector) {
	if o == nil || det == nil {
		return
	}
	o.det.Store(det)
}

// consume turns deltas and events into detector evidence until ctx is
// done: resets seen on client traffic (a refused client SYN, as an event
// or in the counters, weighs what passiveResetCount says), client SYNs
// retransmitted (unanswered handshakes) and the handshake latency's
// median.
func (o *passiveObserver) consume(ctx context.Context) {
	var evs []prober.Evidence
	var dates reportDates
	for {
		evs = evs[:0]
		select {
		case <-ctx.Done():
			return
		case e := <-o.p.Events():
			at := wallOf(e.KtimeNs, time.Now(), loader.Ktime())
			if ev, ok := eventEvidence(e, at); ok {
				evs = append(evs, ev)
			}
			dates.event(e.RealServer, at)
			if o.log.Enabled(ctx, slog.LevelDebug) { // no strings built per event otherwise
				o.log.Debug("passive event", "real_server", e.RealServer.String(), "kind", e.Kind.String())
			}
		case ds := <-o.p.Deltas():
			dates.report(time.Now())
			for _, d := range ds {
				at := dates.of(d.RealServer) // zero: when handed over
				if d.Clients.Resets > 0 {
					evs = append(evs, prober.Evidence{Target: d.RealServer, Kind: prober.EvidencePassiveReset, Count: passiveResetCount(d.Clients), At: at})
				}
				if d.Clients.SYNRetransmits > 0 {
					evs = append(evs, prober.Evidence{Target: d.RealServer, Kind: prober.EvidencePassiveUnanswered, Count: int(d.Clients.SYNRetransmits), At: at})
				}
				if d.Clients.Latency.Count() > 0 {
					evs = append(evs, prober.Evidence{Target: d.RealServer, Kind: prober.EvidenceLatency, RTT: d.HandshakeQuantile(0.5)})
				}
			}
			dates.done()
		}
		if det := o.det.Load(); det != nil && len(evs) > 0 {
			det.Observe(evs...)
		}
	}
}

// eventEvidence is the detector evidence of a passive event seen at at;
// false for a kind that is none (the director's own resets: its checks
// report those).
func eventEvidence(e loader.Event, at time.Time) (prober.Evidence, bool) {
	switch e.Kind {
	case loader.EventReset:
		return prober.Evidence{Target: e.RealServer, Kind: prober.EvidencePassiveReset, Count: 1, At: at}, true
	case loader.EventRefused: // one RST, and it refused a client's SYN
		return prober.Evidence{Target: e.RealServer, Kind: prober.EvidencePassiveReset,
			Count: passiveResetCount(loader.ClientCounters{Resets: 1, Refused: 1}), At: at}, true
	case loader.EventSYNRetransmit:
		return prober.Evidence{Target: e.RealServer, Kind: prober.EvidencePassiveUnanswered, Count: 1, At: at}, true
	}
	return prober.Evidence{}, false
}

// passiveResetCount is the Count of the passive-reset evidence for c: its
// resets, and at least the detector's threshold when one of them refused
// a client's SYN. A refused connect says nothing listens on the real
// server's port, what a SYN probe's RST says (a suspicion at once); a
// reset of an established connection can be the application's own doing,
// so those take DefaultPassiveResets in one report. Either way the
// suspicion only runs the full checks now: a healthy server's stray
// refusal costs one check.
func passiveResetCount(c loader.ClientCounters) int {
	n := int(c.Resets)
	if c.Refused > 0 {
		n = max(n, prober.DefaultPassiveResets)
	}
	return n
}

// stop stops the observer and detaches its programs.
func (o *passiveObserver) stop() {
	if o == nil {
		return
	}
	o.cancel()
	o.wg.Wait()
	if err := o.p.Close(); err != nil {
		o.log.Warn("close passive observer", "error", err)
		return
	}
	o.log.Debug("passive observer closed: programs detached")
}

// drTargets returns the LVS-DR real servers of cfg by address.
func drTargets(cfg *config.Config) map[netip.Addr][]netip.AddrPort {
	out := map[netip.Addr][]netip.AddrPort{}
	for _, vs := range cfg.VirtualServers {
		if vs.Protocol != config.TCP {
			continue
		}
		for _, rs := range vs.RealServers {
			port := rs.Port
			if port == 0 {
				port = vs.Port
			}
			if rs.Method != config.DR || port == 0 {
				continue
			}
			a := rs.Addr.Unmap()
			ap := netip.AddrPortFrom(a, port)
			if !slices.Contains(out[a], ap) {
				out[a] = append(out[a], ap)
			}
		}
	}
	return out
}

// refreshDR tells the programs the link-layer addresses of the LVS-DR
// real servers, from the neighbour table (IPVS resolves them as it sends;
// a real server not resolved yet is added on a later refresh).
func (o *passiveObserver) refreshDR() error {
	targets := drTargets(o.cfg)
	if len(targets) == 0 && !o.hadDR {
		return nil
	}
	o.hadDR = len(targets) > 0
	neighs, err := netlink.NeighList(0, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list neighbours: %w", err)
	}
	m := map[loader.DRKey]netip.AddrPort{}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || len(n.HardwareAddr) != 6 || n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 {
			continue
		}
		for _, ap := range targets[ip.Unmap()] {
			m[loader.DRKey{MAC: [6]byte(n.HardwareAddr), Port: ap.Port()}] = ap
		}
	}
	return o.p.SetDirectRouted(m)
}

// passiveLater is a passive observer being loaded in the background, so
// that the checks start without waiting for it.
type passiveLater struct {
	done chan struct{}
	o    *passiveObserver // set before done is closed; nil when off
}

// startPassiveLater runs startPassive in the background and, once it is
// loaded, feeds det and follows the configuration current returns.
func startPassiveLater(ctx context.Context, log *slog.Logger, f passiveFlags, syn synFlags, cfg *config.Config,
	reg prometheus.Registerer, det *prober.Detector, current func() *config.Config) *passiveLater {
	pl := &passiveLater{done: make(chan struct{})}
	go func() {
		defer close(pl.done)
		o := startPassive(ctx, log, f, syn, cfg, reg)
		o.feedDetector(det)
		o.follow(ctx, current)
		pl.o = o
	}()
	return pl
}

// wait returns the observer once its loading has ended (nil when it is
// off or could not load).
func (pl *passiveLater) wait() *passiveObserver {
	<-pl.done
	return pl.o
}

// stop waits for the loading to end and stops the observer.
func (pl *passiveLater) stop() { pl.wait().stop() }

// reportDates dates the passive reports' evidence. A report's counters
// have no time of their own: its evidence for a real server is dated by
// the real server's first event (the kernel's time of the packet) since
// the previous report, so that a removal's stages start where the signal
// did; without one, it is dated when it is handed over (zero). An event
// from before the previous report was counted in that one. Not safe for
// concurrent use (the consume goroutine owns it).
type reportDates struct {
	first map[netip.AddrPort]time.Time
	last  time.Time // when the previous report was read
}

// event notes an event of rs at at.
func (r *reportDates) event(rs netip.AddrPort, at time.Time) {
	if !at.After(r.last) {
		return
	}
	if r.first == nil {
		r.first = map[netip.AddrPort]time.Time{}
	}
	if f, ok := r.first[rs]; !ok || at.Before(f) {
		r.first[rs] = at
	}
}

// report starts a report read at now; of dates its real servers, done
// ends it.
func (r *reportDates) report(now time.Time) { r.last = now }

// of is the date of rs's evidence in the current report; zero: none.
func (r *reportDates) of(rs netip.AddrPort) time.Time { return r.first[rs] }

// done forgets the events the report covered.
func (r *reportDates) done() { clear(r.first) }
