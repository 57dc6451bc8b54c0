package synprobe

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"
)

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
	batch   []Signal  // signals of the current drain; receiver goroutine only
	spare   batchPool // batches given back by the consumer (recycle.go)
	seed    maphash.Seed

	mu        sync.Mutex
	targets   map[netip.AddrPort]*target
	paths     map[pathKey]*path // the routes of the targets (targets.go)
	due       due
	unsettled []settlement // successors' departures, in untilNs order
	deadlines deadlines    // the probes' own deadlines (deadline.go)
	wake      chan struct{}
	rate      float64 // fraction of the nominal probe rate while backed off (pace.go); 0 means 1
	nominal   float64 // probes per second of all targets at their intervals (tick.go)
	intervals intervalCounts
	added     int // targets added since the send loop last looked (pace.go's start-up grace)

	sendMu sync.Mutex // guards snd
	snd    *sender

	nlMu sync.Mutex      // guards nl
	nl   *netlink.Handle // routes, links and neighbours of New's namespace

	running atomic.Bool
	closed  bool

	// observe, when set (by tests, before Run), sees the outcome of every
	// packet the receiver hands up: nil for a valid answer, else the reason.
	observe func(error)
	// onWakeup, when set (by tests, before Run), sees every wakeup of
	// the send loop that sent probes: how many, how many of them were
	// already late (outside the wakeup's limit), at which tick.
	onWakeup func(probes, overdue int, tick time.Duration)
	// pinRate, when set (by tests, before Run), is the probe rate's
	// fraction held whatever the back-off decides (pace.go).
	pinRate float64
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
		targets: map[netip.AddrPort]*target{}, paths: map[pathKey]*path{},
		wake: make(chan struct{}, 1),
		snd:  newSender(cfg.Batch),
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.cookies, err = newCookies(); err != nil {
		return nil, err
	}
	if p.nl, err = netlink.NewHandle(); err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	if p.resv, err = reservePorts(cfg.ReservedPortsFile, p.ports); err != nil {
		return nil, err
	}
	if err := p.openReceiver(); err != nil {
		return nil, err
	}
	p.m, err = newMetrics(cfg.Registerer, p.kernelLost, p.targetCount, p.receiverStats)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	p.m.receiver.WithLabelValues(p.recv.name()).Set(1)
	return p, nil
}

func (p *Prober) openReceiver() error {
	if p.cfg.Receiver != ReceiverPacket {
		r, err := newEBPFReceiver(p.ports, p.cfg.Interfaces, ringRecords(p.cfg), p.cfg.KernelRST, p.log)
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

// Signals returns the channel of signals, in batches: one per drain of
// the receiver (at least every few milliseconds while answers come), in
// the order they happened; a batch is the receiver's to keep (or to give
// back with [Prober.Recycle] once done with it). A batch
// that does not fit is dropped and its signals counted
// (signals_dropped_total); [Prober.Snapshot] always has the current
// state.
func (p *Prober) Signals() <-chan []Signal { return p.signals }

// Run probes and receives until ctx is done; it returns ctx's error then,
// or the first failure of the sender or receiver.
func (p *Prober) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	g, ctx := errgroup.WithContext(ctx)
	if _, ok := p.recv.(poller); !ok { // else the send loop drains it
		g.Go(func() error { return p.recv.run(ctx, p.handle, p.settleMisses) })
	}
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
	if p.nl != nil {
		p.nlMu.Lock()
		p.nl.Close()
		p.nlMu.Unlock()
	}
	return errors.Join(errs...)
}
