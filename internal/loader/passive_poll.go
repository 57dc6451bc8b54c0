package loader

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
)

// rsSlots gives every observed real server a stable slot number, so that
// [Passive.Run]'s baseline and the metrics' labels live in flat slices
// indexed by slot instead of maps rebuilt at every read. A slot freed by a
// removed real server is reused; its generation changes then, so a
// baseline read under the old owner is never diffed against the new one.
// Guarded by Passive.mu.
type rsSlots struct {
	byKey map[[rsKeySize]byte]int32 // encoded map key -> slot
	ap    []netip.AddrPort          // by slot; the zero value when free
	label []string                  // by slot: ap.String(), the metrics label
	gen   []uint32                  // by slot: changes on every (re)assignment, never 0 while assigned
	free  []int32                   // freed slots, oldest first; may hold a slot taken since (addHome), skipped then
	freed []uint32                  // by slot: the round it was last freed in
	round uint32                    // SetRealServers calls so far
	gens  uint32
}

// add gives ap (encoded as k) a slot below limit and returns it, or false
// when every slot below limit is taken. The slot is the real server's
// index in the programs' rs_stats. Freed slots are reused oldest first,
// so a program that found a removed real server a moment ago does not
// count into its successor.
func (s *rsSlots) add(k [rsKeySize]byte, ap netip.AddrPort, limit int) (int32, bool) {
	if s.byKey == nil {
		s.byKey = map[[rsKeySize]byte]int32{}
	}
	if i, ok := s.byKey[k]; ok {
		return i, true
	}
	i := int32(-1)
	for i < 0 && len(s.free) > 0 {
		if f := s.free[0]; s.gen[f] == 0 {
			i = f
		}
		s.free = s.free[1:]
	}
	if i < 0 {
		if len(s.ap) >= limit {
			return 0, false
		}
		i = int32(len(s.ap))
		s.grow()
	}
	s.assign(k, ap, i)
	return i, true
}

// remove frees k's slot.
func (s *rsSlots) remove(k [rsKeySize]byte) {
	i, ok := s.byKey[k]
	if !ok {
		return
	}
	delete(s.byKey, k)
	s.ap[i], s.label[i], s.gen[i] = netip.AddrPort{}, "", 0
	s.freed[i] = s.round
	s.free = append(s.free, i)
}

// rsKeyOf is the byte layout of struct passive_rs_key (see decodeRSKey)
// from a generated key's fields; the port is kept as stored, in network
// order.
func rsKeyOf(addr *[16]uint8, port uint16, proto, family uint8) (k [rsKeySize]byte) {
	copy(k[:], addr[:])
	binary.NativeEndian.PutUint16(k[16:], port)
	k[18], k[19] = proto, family
	return k
}

// batchBuf is one map's read buffers, kept between reads: a batch of
// entries and, by entry, what resolve found of its key.
type batchBuf[K, V any] struct {
	keys  []K
	vals  []V
	slot  []int32          // the real server's slot; -1: none (removed meanwhile)
	gen   []uint32         // the slot's generation
	ap    []netip.AddrPort // the real server
	label []string         // its metrics label

	mem    *ebpf.Memory // rs_stats' memory mapping, once mapped (passive_mmap.go)
	mapped mapState     // whether rs_stats is read through mem; tests set mapRefused for the BatchLookup path
}

// slotOf resolves a map key to the real server's slot (-1: none, e.g.
// removed meanwhile) under Passive.mu; with done it also says whether the
// keys after k hold no assigned slot (reading can stop).
type slotOf[K any] func(s *rsSlots, k *K) (slot int32, done bool)

// bySlot resolves the keys of an array indexed by slot (rs_stats): slots
// are handed out from 0 up, so the read stops at the last one in use.
func bySlot(s *rsSlots, k *uint32) (int32, bool) {
	i, done := int32(-1), int(*k)+1 >= len(s.ap)
	if int(*k) < len(s.gen) && s.gen[*k] != 0 {
		i = int32(*k)
	}
	return i, done
}

// byRSKey resolves the keys of a hash map keyed by real server
// (own_targets); key gives a key's encoding.
func byRSKey[K any](key func(*K) [rsKeySize]byte) slotOf[K] {
	return func(s *rsSlots, k *K) (int32, bool) {
		if i, ok := s.byKey[key(k)]; ok {
			return i, false
		}
		return -1, false
	}
}

// readBatches reads the entries of m into b, readBatch entries per system
// call (entry by entry on a kernel without batch operations, before 5.6),
// and calls fn with the number of entries of each batch in b, their keys
// resolved to slots by resolve. Each batch is read and resolved under
// p.mu, so that Close cannot close m meanwhile (it returns [ErrClosed]
// once p is closed); fn runs without the lock.
//
// rs_stats is read through its memory mapping instead, only the slots in
// use (readMapped), where the kernel and the object allow it: the same
// entries of the same slots in the same order, without the free slots
// (which resolve to -1 here and every caller skips).
func readBatches[K, V any](p *Passive, m *ebpf.Map, b *batchBuf[K, V], resolve slotOf[K], fn func(n int)) error {
	if b.keys == nil {
		b.keys, b.vals = make([]K, readBatch), make([]V, readBatch)
		b.slot, b.gen = make([]int32, readBatch), make([]uint32, readBatch)
		b.ap, b.label = make([]netip.AddrPort, readBatch), make([]string, readBatch)
	}
	if rb, ok := any(b).(*rsStatsBuf); ok && m == p.tc.RsStats && rb.mapped != mapRefused {
		if done, err := readMapped(p, rb, fn); done {
			return err
		}
	}
	var cur ebpf.MapBatchCursor
	var it *ebpf.MapIterator // entry by entry, once batches are found unsupported
	for {
		n, done, err := readBatch1(p, m, b, resolve, &cur, &it)
		if n > 0 {
			fn(n)
		}
		if done || err != nil {
			return err
		}
	}
}

// readBatch1 reads and resolves one batch under p.mu: the entries read,
// whether the reading is done, and the error that ended the read.
func readBatch1[K, V any](p *Passive, m *ebpf.Map, b *batchBuf[K, V], resolve slotOf[K], cur *ebpf.MapBatchCursor, it **ebpf.MapIterator) (n int, done bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, true, ErrClosed
	}
	if len(p.slots.ap) == 0 {
		return 0, true, nil // nothing observed
	}
	if *it == nil {
		n, err = m.BatchLookup(cur, b.keys, b.vals, nil)
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			done, err = true, nil
		case errors.Is(err, ebpf.ErrNotSupported) && n == 0:
			*it, err = m.Iterate(), nil
		}
	}
	if *it != nil {
		for n < len(b.keys) && (*it).Next(&b.keys[n], &b.vals[n]) {
			n++
		}
		if n < len(b.keys) {
			done, err = true, (*it).Err()
		}
	}
	for i := range n {
		s, last := resolve(&p.slots, &b.keys[i])
		if s < 0 {
			b.slot[i] = -1
		} else {
			b.slot[i], b.gen[i], b.ap[i], b.label[i] = s, p.slots.gen[s], p.slots.ap[s], p.slots.label[s]
		}
		if last {
			return i + 1, true, err
		}
	}
	return n, done, err
}

// ownKey encodes own_targets' generated key.
func ownKey(k *passiveTracePassiveRsKey) [rsKeySize]byte {
	return rsKeyOf(&k.Addr, k.Port, k.Proto, k.Family)
}

// passivePoller is [Passive.Run]'s state between reads: the counters the
// last batch of deltas ran up to, by slot, and the two batches it
// alternates between. Run's goroutine only.
type passivePoller struct {
	based   bool      // the first read, the baseline, is done
	at      time.Time // when the counters in clients and own were read
	cgen    []uint32  // by slot: the generation clients[slot] was read under; 0: none
	clients []clientBase
	ogen    []uint32
	own     []passiveTracePassiveOwnStats
	cbuf    batchBuf[uint32, passivePassiveRsStats]
	obuf    batchBuf[passiveTracePassiveRsKey, passiveTracePassiveOwnStats]
	inBatch []int32    // by slot: 1 + the index of the slot's Delta in the batch being built; 0: none
	batches [2][]Delta // a batch is reused two batches later (see [Passive.Deltas])
	next    int        // the batch to build next
}

// growTo makes s hold n elements, growing by at least a quarter so that
// slots added one by one do not copy it each time. [Passive.poll] sizes the
// slices to the number of slots before a read, so they stay that size.
func growTo[T any](s []T, n int) []T {
	if n <= len(s) {
		return s
	}
	if n < len(s)+len(s)/4 {
		n = len(s) + len(s)/4
	}
	return append(s, make([]T, n-len(s))...)
}

// growClients and growOwn make the baselines hold n slots; the own
// connections' only once they are read (not with ClientDeltasOnly).
func (pp *passivePoller) growClients(n int) {
	if n > len(pp.cgen) {
		pp.cgen, pp.clients, pp.inBatch = growTo(pp.cgen, n), growTo(pp.clients, n), growTo(pp.inBatch, n)
	}
}

func (pp *passivePoller) growOwn(n int) {
	if n > len(pp.ogen) {
		pp.ogen, pp.own, pp.inBatch = growTo(pp.ogen, n), growTo(pp.own, n), growTo(pp.inBatch, n)
	}
}

// client takes one real server's newly read client counters v (slot,
// generation gen, address ap): it adds to ds the change since the
// baseline, counting from zero where the slot had no baseline under gen,
// and makes v the baseline.
func (pp *passivePoller) client(ds []Delta, slot int32, gen uint32, ap netip.AddrPort, v *passivePassiveRsStats, iv time.Duration) []Delta {
	pp.growClients(int(slot) + 1)
	old := &pp.clients[slot]
	if pp.cgen[slot] == gen && old.same(v) {
		return ds // unchanged: the common case, no conversion
	}
	if pp.cgen[slot] != gen {
		*old = clientBase{}
	}
	if pp.based {
		if d := old.delta(v); !d.zero() {
			ds = append(ds, Delta{RealServer: ap, Interval: iv, Clients: d})
			pp.inBatch[slot] = int32(len(ds))
		}
	}
	old.set(v)
	pp.cgen[slot] = gen
	return ds
}

// ownEntry is client's counterpart for the director's own connections: a
// change joins the real server's Delta when client made one.
func (pp *passivePoller) ownEntry(ds []Delta, slot int32, gen uint32, ap netip.AddrPort, v *passiveTracePassiveOwnStats, iv time.Duration) []Delta {
	pp.growOwn(int(slot) + 1)
	old := &pp.own[slot]
	if pp.ogen[slot] == gen && sameOwn(old, v) {
		return ds
	}
	if pp.ogen[slot] != gen {
		*old = passiveTracePassiveOwnStats{}
	}
	if pp.based {
		if d := ownCounters(v).sub(ownCounters(old)); !d.zero() {
			if j := pp.inBatch[slot]; j > 0 && ds[j-1].RealServer == ap {
				ds[j-1].Own = d
			} else {
				ds = append(ds, Delta{RealServer: ap, Interval: iv, Own: d})
			}
		}
	}
	*old, pp.ogen[slot] = *v, gen
	return ds
}

// sameOwn reports whether a and b hold the same counts (the scalar
// counters decide, as in clientBase.same).
func sameOwn(a, b *passiveTracePassiveOwnStats) bool {
	return a.Connects == b.Connects && a.Established == b.Established && a.Failed == b.Failed && a.Refused == b.Refused &&
		a.Resets == b.Resets && a.Retrans == b.Retrans && a.SynRetrans == b.SynRetrans && a.LatCount == b.LatCount
}

// startBatch returns the batch to fill, emptied.
func (pp *passivePoller) startBatch() []Delta {
	clear(pp.inBatch)
	return pp.batches[pp.next][:0]
}

// endBatch keeps ds's storage and, when sent, makes the other batch the
// next one to fill.
func (pp *passivePoller) endBatch(ds []Delta, sent bool, at time.Time) {
	pp.batches[pp.next] = ds
	if sent {
		pp.next ^= 1
	}
	pp.at, pp.based = at, true
}
