package loader

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// passiveSnapshot is one read of every real server's counters.
type passiveSnapshot struct {
	at      time.Time
	clients map[netip.AddrPort]ClientCounters
	own     map[netip.AddrPort]OwnCounters
}

// eventPollDelay is how long after an event Run reads the counters.
const eventPollDelay = 5 * time.Millisecond

// localAddrRefresh is how often Run refreshes the director's own
// addresses in the programs' map.
const localAddrRefresh = 10 * time.Second

// readBatch is the number of entries one BatchLookup call reads.
const readBatch = 1024

// Counters reads every observed real server's cumulative counters, in
// batches (one system call per 1024 real servers; entry by entry on a
// kernel without batch operations, before 5.6).
func (p *Passive) Counters() (clients map[netip.AddrPort]ClientCounters, own map[netip.AddrPort]OwnCounters, err error) {
	clients = make(map[netip.AddrPort]ClientCounters)
	err = readAll(p.tc.RealServers, func(k *passivePassiveRsKey, v *passivePassiveRsStats) {
		if ap, ok := decodeRSKey(rsKeyBytes(k)); ok {
			clients[ap] = clientCounters(v)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read real_servers: %w", err)
	}
	if p.trace == nil {
		return clients, nil, nil
	}
	own = make(map[netip.AddrPort]OwnCounters, len(clients))
	err = readAll(p.trace.OwnTargets, func(k *passiveTracePassiveRsKey, v *passiveTracePassiveOwnStats) {
		if ap, ok := decodeRSKey(rsKeyBytesTrace(k)); ok {
			own[ap] = ownCounters(v)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read own_targets: %w", err)
	}
	return clients, own, nil
}

// readAll calls fn for every entry of m, reading readBatch entries per
// system call where the kernel can, one by one where it cannot.
func readAll[K, V any](m *ebpf.Map, fn func(*K, *V)) error {
	keys := make([]K, readBatch)
	vals := make([]V, readBatch)
	var cur ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cur, keys, vals, nil)
		for i := range n {
			fn(&keys[i], &vals[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil
		case errors.Is(err, ebpf.ErrNotSupported) && n == 0:
			var k K
			var v V
			it := m.Iterate()
			for it.Next(&k, &v) {
				fn(&k, &v)
			}
			return it.Err()
		case err != nil:
			return err
		}
	}
}

func clientCounters(v *passivePassiveRsStats) ClientCounters {
	return ClientCounters{
		SYNs: v.Syns, SYNRetransmits: v.SynRetrans, SYNACKs: v.Synacks, Resets: v.Rsts, Refused: v.Refused,
		Latency: Histogram(v.Lat), LatencySum: time.Duration(v.LatSumNs),
	}
}

func ownCounters(v *passiveTracePassiveOwnStats) OwnCounters {
	return OwnCounters{
		Connects: v.Connects, Established: v.Established, Failed: v.Failed, Refused: v.Refused, Resets: v.Resets,
		Retransmits: v.Retrans, SYNRetransmits: v.SynRetrans,
		Latency: Histogram(v.Lat), LatencySum: time.Duration(v.LatSumNs),
	}
}

// Deltas returns the channel on which [Passive.Run] sends, every
// PollInterval, one batch with a [Delta] for each real server whose
// counters changed. While a batch waits for the consumer no other is
// sent; the next one then covers the whole time since the last batch
// taken (its Interval says how long), so no change is lost.
func (p *Passive) Deltas() <-chan []Delta { return p.deltas }

// Events returns the channel of [Event]s, sent as soon as the kernel
// reports them (no polling delay). Events the consumer does not take in
// time are dropped and counted.
func (p *Passive) Events() <-chan Event { return p.events }

// Run reads the event ring buffer and polls the counters until ctx is
// done, and returns ctx's error then. An event makes it read the counters
// early, eventPollDelay later (time for the rest of a burst of resets to
// arrive), so a dying real server's Delta follows its first RST within
// milliseconds, not PollInterval. Only one Run may be active.
func (p *Passive) Run(ctx context.Context) error {
	if !p.running.TryLock() {
		return errors.New("passive: Run already active")
	}
	defer p.running.Unlock()
	rd, err := ringbuf.NewReader(p.tc.Events)
	if err != nil {
		return fmt.Errorf("open passive event ring: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { rd.Close() })
	defer stop()
	evErr := make(chan error, 1)
	soon := make(chan struct{}, 1)
	go func() { evErr <- p.readEvents(rd, soon) }()
	defer func() { rd.Close(); <-evErr }()

	if err := p.poll(); err != nil {
		return err
	}
	t := time.NewTicker(p.opts.PollInterval)
	defer t.Stop()
	refreshed := time.Now()
	var burst <-chan time.Time // set while an event's early read is pending
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-soon:
			if burst == nil {
				burst = time.After(eventPollDelay)
			}
		case <-burst:
			burst = nil
			if err := p.poll(); err != nil {
				return err
			}
		case err := <-evErr:
			evErr <- err // for the deferred wait
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		case <-t.C:
			if err := p.poll(); err != nil {
				return err
			}
			if time.Since(refreshed) >= localAddrRefresh {
				refreshed = time.Now()
				if err := p.RefreshLocalAddrs(); err != nil {
					p.log.Warn("local addresses not refreshed", "error", err)
				}
			}
		}
	}
}

// readEvents forwards ring-buffer events until the reader is closed, and
// asks Run (through soon) to read the counters early.
func (p *Passive) readEvents(rd *ringbuf.Reader, soon chan<- struct{}) error {
	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return ErrClosed
			}
			return fmt.Errorf("read passive events: %w", err)
		}
		var e Event
		if !decodeEvent(rec.RawSample, &e) {
			continue
		}
		select {
		case p.events <- e:
		default:
			p.mu.Lock()
			p.dropped++
			p.mu.Unlock()
		}
		select {
		case soon <- struct{}{}:
		default:
		}
	}
}

// poll reads the counters, keeps them for the metrics and sends the
// changes since the last batch the consumer took. While the consumer has
// not taken a batch, the next ones are not sent but covered by the one
// after: changes are coalesced, never lost.
func (p *Passive) poll() error {
	clients, own, err := p.Counters()
	if err != nil {
		return err
	}
	snap := passiveSnapshot{at: time.Now(), clients: clients, own: own}
	p.mu.Lock()
	p.snap = snap
	p.mu.Unlock()
	if p.sent.clients == nil {
		p.sent = snap // the first read is the baseline
		return nil
	}
	if len(p.deltas) > 0 {
		return nil // the consumer is behind: the next batch covers this one
	}
	ds := diffSnapshots(p.sent, snap)
	if len(ds) == 0 {
		return nil
	}
	p.deltas <- ds // cannot block: only poll sends, and the channel is empty
	p.sent = snap
	return nil
}

// diffSnapshots returns a Delta for each real server whose counters
// changed between a and b. A real server new in b counts from zero.
func diffSnapshots(a, b passiveSnapshot) []Delta {
	iv := b.at.Sub(a.at)
	var ds []Delta
	seen := map[netip.AddrPort]bool{}
	add := func(ap netip.AddrPort) {
		if seen[ap] {
			return
		}
		seen[ap] = true
		d := Delta{RealServer: ap, Interval: iv,
			Clients: b.clients[ap].sub(a.clients[ap]),
			Own:     b.own[ap].sub(a.own[ap]),
		}
		if !d.Clients.zero() || !d.Own.zero() {
			ds = append(ds, d)
		}
	}
	for ap := range b.clients {
		add(ap)
	}
	for ap := range b.own {
		add(ap)
	}
	return ds
}
