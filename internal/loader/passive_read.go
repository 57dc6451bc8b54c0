package loader

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// eventPollDelay is how long after an event Run reads the counters.
const eventPollDelay = 5 * time.Millisecond

// eventPollGap is the shortest time between two reads that events ask
// for: under a storm of events (many real servers dying at once) Run
// reads every entry at most 1/eventPollGap times a second.
const eventPollGap = 50 * time.Millisecond

// localAddrRefresh is how often Run refreshes the director's own
// addresses in the programs' map.
const localAddrRefresh = 10 * time.Second

// readBatch is the number of entries one BatchLookup call reads.
const readBatch = 1024

// Counters reads every observed real server's cumulative counters, in
// batches (one system call per 1024 real servers; entry by entry on a
// kernel without batch operations, before 5.6). It builds new maps at
// every call: [Passive.Run] and the metrics read into buffers they keep.
func (p *Passive) Counters() (clients map[netip.AddrPort]ClientCounters, own map[netip.AddrPort]OwnCounters, err error) {
	clients = make(map[netip.AddrPort]ClientCounters)
	var cb batchBuf[uint32, passivePassiveRsStats]
	err = readBatches(p, p.tc.RsStats, &cb, bySlot, func(n int) {
		for i := range n {
			if cb.slot[i] >= 0 {
				clients[cb.ap[i]] = clientCounters(&cb.vals[i])
			}
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read rs_stats: %w", err)
	}
	if p.trace == nil {
		return clients, nil, nil
	}
	own = make(map[netip.AddrPort]OwnCounters, len(clients))
	var ob batchBuf[passiveTracePassiveRsKey, passiveTracePassiveOwnStats]
	err = readBatches(p, p.trace.OwnTargets, &ob, byRSKey(ownKey), func(n int) {
		for i := range n {
			k := ownKey(&ob.keys[i])
			if ap, ok := decodeRSKey(k[:]); ok {
				own[ap] = ownCounters(&ob.vals[i])
			}
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read own_targets: %w", err)
	}
	return clients, own, nil
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
// counters changed (with [PassiveOptions.ClientDeltasOnly], whose client
// counters changed). While a batch waits for the consumer no other is
// sent; the next one then covers the whole time since the last batch
// taken (its Interval says how long), so no change is lost.
//
// A batch's storage is reused for the batch after the next one, so the
// consumer must be done with a batch by the time it receives the next
// (a loop that handles each batch before receiving again is).
func (p *Passive) Deltas() <-chan []Delta { return p.deltas }

// Events returns the channel of [Event]s, sent as soon as the kernel
// reports them (no polling delay). Events the consumer does not take in
// time are dropped and counted.
func (p *Passive) Events() <-chan Event { return p.events }

// Run reads the event ring buffer and polls the counters until ctx is
// done, and returns ctx's error then. An event makes it read the counters
// early, eventPollDelay later (time for the rest of a burst of resets to
// arrive), so a dying real server's Delta follows its first RST within
// milliseconds, not PollInterval; and once more EventTail after that
// read, since the programs send no second event of a kind for a real
// server within EventGap: a client's refused reconnect right after the
// reset of its connection, or the third reset, would otherwise wait for
// the next event or PollInterval. Only one Run may be active.
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
	p.read("start")
	t := time.NewTicker(p.opts.PollInterval)
	defer t.Stop()
	refreshed := time.Now()
	lastRead := refreshed
	burst := time.NewTimer(time.Hour)
	burst.Stop()
	defer burst.Stop()
	pending := false // an event's early read (or its tail) is due on burst
	tail := false    // the read due on burst is an event's tail
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-soon:
			if !pending {
				pending = true
				burst.Reset(max(eventPollDelay, eventPollGap-time.Since(lastRead)))
			}
		case <-burst.C:
			lastRead = time.Now()
			if err := p.poll(); err != nil {
				return err
			}
			if tail {
				p.read("tail")
			} else {
				p.read("event")
			}
			// An event's read is followed by its tail; events during
			// the tail's wait are read by it.
			tail = !tail
			pending = tail
			if tail {
				burst.Reset(p.opts.EventTail)
			}
		case err := <-evErr:
			evErr <- err // for the deferred wait
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		case <-t.C:
			lastRead = time.Now()
			if err := p.poll(); err != nil {
				return err
			}
			p.read("tick")
			if time.Since(refreshed) >= localAddrRefresh {
				refreshed = time.Now()
				if err := p.RefreshLocalAddrs(); err != nil {
					p.log.Warn("local addresses not refreshed", "error", err)
				}
			}
		}
	}
}

// read tells the test hook, if any, that Run has read the counters.
func (p *Passive) read(why string) {
	if p.onRead != nil {
		p.onRead(why)
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
		if e.Kind == EventOwnReset && p.opts.ClientDeltasOnly {
			continue // its counters are not in the deltas: no early read
		}
		select {
		case soon <- struct{}{}:
		default:
		}
	}
}

// poll reads the counters and sends the changes since the last batch the
// consumer took. While the consumer has not taken a batch, poll reads
// nothing: the batch after covers the time since the last one taken, so
// changes are coalesced, never lost. The counters go into the buffers of
// p.poller; nothing is allocated once they have grown to the number of
// real servers and of changes.
func (p *Passive) poll() error {
	if len(p.deltas) > 0 {
		return nil // the consumer is behind: the next batch covers this interval
	}
	pp := &p.poller
	p.mu.Lock()
	slots := len(p.slots.ap)
	p.mu.Unlock()
	pp.growClients(slots)
	if p.trace != nil && !p.opts.ClientDeltasOnly {
		pp.growOwn(slots)
	}
	now := time.Now()
	iv := now.Sub(pp.at)
	ds := pp.startBatch()
	cb := &pp.cbuf
	err := readBatches(p, p.tc.RsStats, cb, bySlot, func(n int) {
		for i := range n {
			if s := cb.slot[i]; s >= 0 {
				ds = pp.client(ds, s, cb.gen[i], cb.ap[i], &cb.vals[i], iv)
			}
		}
	})
	if err != nil {
		pp.batches[pp.next] = ds
		return fmt.Errorf("read rs_stats: %w", err)
	}
	if p.trace != nil && !p.opts.ClientDeltasOnly {
		ob := &pp.obuf
		err = readBatches(p, p.trace.OwnTargets, ob, byRSKey(ownKey), func(n int) {
			for i := range n {
				if s := ob.slot[i]; s >= 0 {
					ds = pp.ownEntry(ds, s, ob.gen[i], ob.ap[i], &ob.vals[i], iv)
				}
			}
		})
		if err != nil {
			pp.batches[pp.next] = ds
			return fmt.Errorf("read own_targets: %w", err)
		}
	}
	sent := pp.based && len(ds) > 0
	if sent {
		p.deltas <- ds // cannot block: only poll sends, and the channel is empty
	}
	pp.endBatch(ds, sent, now)
	return nil
}
