package synprobe

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// ReceiverMode selects how answers are received.
type ReceiverMode int

// Receiver modes.
const (
	ReceiverAuto   ReceiverMode = iota // eBPF, falling back to a packet socket with a warning
	ReceiverEBPF                       // eBPF only; New fails where it cannot load
	ReceiverPacket                     // the packet-socket fallback only
)

// Config configures a [Prober]. Zero fields take the values of
// [DefaultConfig].
type Config struct {
	PortLo, PortHi    uint16                // source ports reserved for probes (inclusive)
	Interval          time.Duration         // per-target probe interval
	PPS               int                   // global cap on probes per second
	Batch             int                   // probes per sendmmsg call
	Interfaces        []string              // interfaces whose ingress the eBPF receiver watches
	Receiver          ReceiverMode          // eBPF, fallback, or eBPF with fallback
	SecretRotation    time.Duration         // how often the cookie key changes
	SignalBuffer      int                   // capacity of the Signals channel, in batches
	ReservedPortsFile string                // the sysctl file; "" for /proc/sys/net/ipv4/ip_local_reserved_ports
	Logger            *slog.Logger          // nil discards
	Registerer        prometheus.Registerer // nil registers nothing
}

// DefaultConfig returns the defaults: probe each target every 100 ms, at
// most 200,000 probes/s in all, source ports 61000-61999 (outside Linux's
// default ephemeral range 32768-60999).
func DefaultConfig() Config {
	return Config{
		PortLo: 61000, PortHi: 61999,
		Interval:       100 * time.Millisecond,
		PPS:            200000,
		Batch:          64,
		SecretRotation: time.Minute,
		SignalBuffer:   256,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.PortLo == 0 {
		c.PortLo, c.PortHi = d.PortLo, d.PortHi
	}
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.PPS <= 0 {
		c.PPS = d.PPS
	}
	if c.Batch <= 0 {
		c.Batch = d.Batch
	}
	if c.SecretRotation <= 0 {
		c.SecretRotation = d.SecretRotation
	}
	if c.SignalBuffer <= 0 {
		c.SignalBuffer = d.SignalBuffer
	}
	if c.ReservedPortsFile == "" {
		c.ReservedPortsFile = reservedPortsFile
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// target is the prober's state for one address and port.
type target struct {
	addr     netip.AddrPort
	local    netip.Addr
	interval uint64 // ns
	next     uint64 // ktime ns when the next probe is due
	idx      int    // index in the due heap, -1 when not in it
	gen      uint32 // probes sent, picks the source port
	// answeredGen is the newest answered probe: a miss settled after a
	// later probe was answered does not count as consecutive.
	answeredGen uint32
	base        uint32 // per-target offset into the port range

	// The newest probe and the one before it. An answer counts for the
	// probe it acknowledges if it reached the kernel (its ktime) before
	// the next probe left; a probe unanswered by then is a miss, settled
	// once the receiver has drained everything older (see settleMisses).
	cur, prev sent

	state TargetState
}

// sent is one probe, as its target remembers it.
type sent struct {
	gen      uint32 // its number among the target's probes, from 1
	lport    uint16 // the source port it left from
	sentNs   uint64 // ktime when it left
	untilNs  uint64 // ktime when the next probe left (0 while newest)
	answered bool
}

// settlement is a probe to declare missed, unless answered, once the
// receiver has drained every answer older than untilNs.
type settlement struct {
	t       *target
	gen     uint32
	untilNs uint64
}

// Prober sends SYN probes to its targets and turns the answers into
// signals. Its methods are safe for concurrent use. Create it with [New]
// in the network namespace it should probe from.
type Prober struct {
	cfg     Config
	log     *slog.Logger
	ports   portRange
	cookies *cookies
	resv    *reservation
	recv    receiver
	m       *metrics
	signals chan []Signal
	batch   []Signal // signals of the current drain; receiver goroutine only
	seed    maphash.Seed

	mu        sync.Mutex
	targets   map[netip.AddrPort]*target
	due       due
	unsettled []settlement // in untilNs order
	wake      chan struct{}

	sendMu sync.Mutex // guards snd
	snd    *sender

	running atomic.Bool
	closed  bool

	// observe, when set (by tests, before Run), sees the outcome of every
	// packet the receiver hands up: nil for a valid answer, else the reason.
	observe func(error)
}

// ErrRunning is returned by Run when the prober is already running.
var ErrRunning = errors.New("prober already running")

// New reserves the source ports, opens the raw sockets and the receiver
// (eBPF where it loads; see [ReceiverMode]) in the calling thread's
// network namespace.
func New(cfg Config) (_ *Prober, err error) {
	cfg = cfg.withDefaults()
	if cfg.PortHi < cfg.PortLo {
		return nil, fmt.Errorf("new prober: port range %d-%d is empty", cfg.PortLo, cfg.PortHi)
	}
	p := &Prober{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "synprobe"),
		ports:   portRange{cfg.PortLo, cfg.PortHi},
		signals: make(chan []Signal, cfg.SignalBuffer),
		seed:    maphash.MakeSeed(),
		targets: map[netip.AddrPort]*target{},
		wake:    make(chan struct{}, 1),
		snd:     newSender(cfg.Batch),
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.cookies, err = newCookies(); err != nil {
		return nil, err
	}
	if p.resv, err = reservePorts(cfg.ReservedPortsFile, p.ports); err != nil {
		return nil, err
	}
	if err := p.openReceiver(); err != nil {
		return nil, err
	}
	p.m, err = newMetrics(cfg.Registerer, p.kernelLost, p.targetCount)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	p.m.receiver.WithLabelValues(p.recv.name()).Set(1)
	return p, nil
}

func (p *Prober) openReceiver() error {
	if p.cfg.Receiver != ReceiverPacket {
		r, err := newEBPFReceiver(p.ports, p.cfg.Interfaces, p.log)
		if err == nil {
			p.recv = r
			return nil
		}
		if p.cfg.Receiver == ReceiverEBPF {
			return err
		}
		p.log.Warn("eBPF receiver unavailable, falling back to a packet socket", "err", err)
	}
	r, err := newPacketReceiver(p.ports)
	if err != nil {
		return err
	}
	p.recv = r
	return nil
}

// Receiver reports the receiver in use: "ebpf" or "packet".
func (p *Prober) Receiver() string { return p.recv.name() }

func (p *Prober) kernelLost() float64 {
	if r, ok := p.recv.(*ebpfReceiver); ok {
		return float64(r.lost())
	}
	return 0
}

func (p *Prober) targetCount() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return float64(len(p.targets))
}

// Add starts probing addr every interval (0 for the configured default).
// Adding a target twice changes its interval.
func (p *Prober) Add(addr netip.AddrPort, interval time.Duration) error {
	if !addr.IsValid() || addr.Port() == 0 {
		return fmt.Errorf("add target %v: needs an address and a port", addr)
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if interval <= 0 {
		interval = p.cfg.Interval
	}
	local, err := localAddrFor(addr.Addr())
	if err != nil {
		return fmt.Errorf("add target %v: %w", addr, err)
	}
	p.sendMu.Lock()
	err = p.snd.open(addr.Addr().Is4(), !addr.Addr().Is4())
	p.sendMu.Unlock()
	if err != nil {
		return fmt.Errorf("add target %v: %w", addr, err)
	}
	h := maphash.Comparable(p.seed, addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.targets[addr]; ok {
		t.interval = uint64(interval)
		return nil
	}
	t := &target{
		addr: addr, local: local, interval: uint64(interval),
		base:  uint32(h),
		state: TargetState{Target: addr},
	}
	// Stagger first probes over one interval so targets added together
	// do not fire together.
	t.next = loader.Ktime() + (h>>32)%uint64(interval)
	p.targets[addr] = t
	p.dueAdd(t)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

func (p *Prober) dueAdd(t *target) { heap.Push(&p.due, t) }

// Remove stops probing addr.
func (p *Prober) Remove(addr netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.targets[addr]
	if !ok {
		return
	}
	delete(p.targets, addr)
	if t.idx >= 0 {
		heap.Remove(&p.due, t.idx)
	}
}

// Signals returns the channel of signals, in batches: one per drain of
// the receiver (at least every few milliseconds while answers come), in
// the order they happened; a batch is the receiver's to keep. A batch
// that does not fit is dropped and its signals counted
// (signals_dropped_total); [Prober.Snapshot] always has the current
// state.
func (p *Prober) Signals() <-chan []Signal { return p.signals }

// Snapshot returns the state of one target.
func (p *Prober) Snapshot(addr netip.AddrPort) (TargetState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.targets[addr]
	if !ok {
		return TargetState{}, false
	}
	return t.state, true
}

// SnapshotAll appends the state of every target to dst.
func (p *Prober) SnapshotAll(dst []TargetState) []TargetState {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.targets {
		dst = append(dst, t.state)
	}
	return dst
}

// emit queues a signal for the next flush (receiver goroutine only).
func (p *Prober) emit(s Signal) { p.batch = append(p.batch, s) }

// flush hands the queued signals over as one batch.
func (p *Prober) flush() {
	if len(p.batch) == 0 {
		return
	}
	select {
	case p.signals <- p.batch:
		p.batch = make([]Signal, 0, cap(p.batch))
	default:
		p.m.dropped.Add(float64(len(p.batch)))
		p.batch = p.batch[:0]
	}
}

// Run probes and receives until ctx is done; it returns ctx's error then,
// or the first failure of the sender or receiver.
func (p *Prober) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.recv.run(ctx, p.handle, p.settleMisses) })
	g.Go(func() error { return p.sendLoop(ctx) })
	g.Go(func() error {
		tk := time.NewTicker(p.cfg.SecretRotation)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tk.C:
				if err := p.cookies.rotate(); err != nil {
					return err
				}
			}
		}
	})
	return g.Wait()
}

// sendLoop sends due probes in batches, paced by the global token bucket.
func (p *Prober) sendLoop(ctx context.Context) error {
	lim := rate.NewLimiter(rate.Limit(p.cfg.PPS), max(p.cfg.Batch, p.cfg.PPS/100))
	batch4 := make([]probe, 0, p.cfg.Batch)
	batch6 := make([]probe, 0, p.cfg.Batch)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := loader.Ktime()
		// Probes due within the next tick go now: one wakeup sends a
		// batch instead of one probe every few microseconds.
		batch4, batch6 = p.collect(now, now+uint64(sendTick), batch4[:0], batch6[:0])
		for _, b := range [][]probe{batch4, batch6} {
			if len(b) == 0 {
				continue
			}
			if err := lim.WaitN(ctx, len(b)); err != nil {
				return ctx.Err()
			}
			p.sendMu.Lock()
			n, err := p.snd.send(b)
			p.sendMu.Unlock()
			p.m.sent.Add(float64(n))
			if err != nil {
				p.m.sendErrors.Add(float64(len(b) - n))
				p.log.Debug("send probes", "err", err)
			}
		}
		if len(batch4)+len(batch6) > 0 {
			continue // more may be due already
		}
		wait := time.Second
		p.mu.Lock()
		if t := p.due.peek(); t != nil {
			wait = time.Duration(t.next - min(t.next, loader.Ktime()))
		}
		p.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// sendTick is the granularity of the send loop: a probe may leave up to
// this much before it is due.
const sendTick = time.Millisecond

// collect takes the targets due by horizon (up to a batch of each family),
// settles their previous probe (a miss when unanswered) and prepares the
// next one. The send time is stamped here, just before the send.
func (p *Prober) collect(now, horizon uint64, b4, b6 []probe) ([]probe, []probe) {
	p.mu.Lock()
	defer p.mu.Unlock()
	size := uint32(p.ports.size())
	for {
		t := p.due.peek()
		if t == nil || t.next > horizon || len(b4) == cap(b4) || len(b6) == cap(b6) {
			return b4, b6
		}
		if t.cur.gen != 0 {
			t.cur.untilNs = now
			if !t.cur.answered {
				p.unsettled = append(p.unsettled, settlement{t: t, gen: t.cur.gen, untilNs: now})
			}
		}
		t.prev = t.cur
		t.gen++
		t.cur = sent{gen: t.gen, lport: p.ports.lo + uint16((t.base+t.gen)%size), sentNs: now}
		t.state.Sent++
		pr := probe{local: t.local, remote: t.addr.Addr(), lport: t.cur.lport, rport: t.addr.Port()}
		pr.seq = p.cookies.seq(pr.local, pr.remote, pr.lport, pr.rport)
		if pr.remote.Is4() {
			b4 = append(b4, pr)
		} else {
			b6 = append(b6, pr)
		}
		t.next += t.interval
		if t.next <= now { // fell behind (pps cap, a pause): skip, don't burst
			t.next = now + t.interval
		}
		p.due.reschedule(t)
	}
}

// settleMisses declares missed every probe whose successor left before
// upTo and that is still unanswered: the receiver has handed up every
// answer that reached the kernel before upTo.
func (p *Prober) settleMisses(upTo uint64) {
	p.mu.Lock()
	n := 0
	for _, st := range p.unsettled {
		if st.untilNs >= upTo {
			break
		}
		n++
		t := st.t
		var pr *sent
		switch st.gen {
		case t.prev.gen:
			pr = &t.prev
		case t.cur.gen:
			pr = &t.cur
		}
		if p.targets[t.addr] != t || (pr != nil && pr.answered) {
			continue // removed, or answered in time after all
		}
		p.m.misses.Inc()
		if st.gen > t.answeredGen {
			t.state.ConsecutiveMisses++
			p.emit(Signal{Target: t.addr, Kind: Miss, ConsecutiveMisses: t.state.ConsecutiveMisses})
		}
	}
	p.unsettled = append(p.unsettled[:0], p.unsettled[n:]...)
	p.mu.Unlock()
	p.flush()
}

// handle validates one packet from the receiver and updates its target.
func (p *Prober) handle(ktime uint64, pkt []byte, wireLen int) {
	var a answer
	err := decodeAnswer(pkt, wireLen, &a)
	if err == nil {
		err = p.settle(ktime, &a)
	}
	if err != nil {
		p.m.invalid.WithLabelValues(err.Error()).Inc()
	}
	if p.observe != nil {
		p.observe(err)
	}
}

func (p *Prober) settle(ktime uint64, a *answer) error {
	key := netip.AddrPortFrom(a.src, a.sport)
	p.mu.Lock()
	t, ok := p.targets[key]
	if !ok || a.dst != t.local {
		p.mu.Unlock()
		return errUnknown
	}
	if !p.cookies.valid(t.local, t.addr.Addr(), a.dport, t.addr.Port(), a.ack) {
		p.mu.Unlock()
		return errBadCookie
	}
	var pr *sent
	switch {
	case t.cur.gen != 0 && a.dport == t.cur.lport:
		pr = &t.cur
	case t.prev.gen != 0 && a.dport == t.prev.lport && ktime < t.prev.untilNs:
		pr = &t.prev
	default:
		p.mu.Unlock()
		return errLate
	}
	if pr.answered {
		p.mu.Unlock()
		return errDuplicate
	}
	rtt := time.Duration(ktime - min(ktime, pr.sentNs))
	pr.answered = true
	t.answeredGen = max(t.answeredGen, pr.gen)
	t.state.Answered++
	t.state.ConsecutiveMisses = 0
	t.state.LastRTT = rtt
	t.state.RSTSeen = a.rst()
	t.state.SynAckSeen = !a.rst()
	kind := SynAck
	if a.rst() {
		kind = Reset
	}
	p.mu.Unlock()
	if kind == SynAck {
		p.m.synacks.Inc()
	} else {
		p.m.resets.Inc()
	}
	p.m.rtt.Observe(rtt.Seconds())
	p.emit(Signal{Target: key, Kind: kind, RTT: rtt})
	return nil
}

// Close stops using the sockets and the receiver and gives the reserved
// ports back. Run must have returned.
func (p *Prober) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	var errs []error
	p.sendMu.Lock()
	errs = append(errs, p.snd.close())
	p.sendMu.Unlock()
	if p.recv != nil {
		errs = append(errs, p.recv.close())
	}
	if p.resv != nil {
		errs = append(errs, p.resv.release())
	}
	return errors.Join(errs...)
}
