package loader

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
)

// rsStatsBuf is the buffer type of rs_stats' reads.
type rsStatsBuf = batchBuf[uint32, passivePassiveRsStats]

// rsStatsSize is the size of one rs_stats value, in Go and in the
// kernel's array (whose values are 8-byte aligned: the struct's size is a
// multiple of 8, so no padding lies between two entries).
const rsStatsSize = int64(unsafe.Sizeof(passivePassiveRsStats{}))

// mapState says how a buffer reads rs_stats.
type mapState int8

const (
	mapUnknown mapState = iota // not tried yet
	mapMapped                  // through the memory mapping
	mapRefused                 // through BatchLookup: the mapping was refused (or a test asked for it)
)

// rsStatsMemory returns rs_stats' memory mapping for b, mapping it on
// first use, or nil where the map cannot be mapped: an object whose
// rs_stats lacks BPF_F_MMAPABLE (a benchmark's older object), a value
// layout other than this package's, or a refused mmap. The answer is kept
// in b, so a refusal costs one attempt. Under p.mu.
func (p *Passive) rsStatsMemory(b *rsStatsBuf) *ebpf.Memory {
	switch b.mapped {
	case mapMapped:
		return b.mem
	case mapRefused:
		return nil
	}
	b.mapped = mapRefused
	m := p.tc.RsStats
	if m.Type() != ebpf.Array || int64(m.ValueSize()) != rsStatsSize || rsStatsSize%8 != 0 {
		return nil
	}
	mem, err := m.Memory()
	if err != nil {
		if !errors.Is(err, ebpf.ErrNotSupported) {
			p.log.Debug("rs_stats not mapped; reading it with system calls", "error", err)
		}
		return nil
	}
	if int64(mem.Size()) < int64(m.MaxEntries())*rsStatsSize {
		return nil
	}
	b.mem, b.mapped = mem, mapMapped
	return mem
}

// readMapped reads the rs_stats entries of the slots in use, in slot
// order, from the map's memory mapping into b, readBatch entries at a
// time, and calls fn with the number of entries of each batch, all
// resolved (b.slot[i] >= 0). It reports false, having read nothing, where
// the map cannot be mapped: the caller then reads it with BatchLookup.
//
// Only the slots in use are copied (their entries, a few hundred bytes
// each), not the whole array (Capacity entries, 16384 by default, ~7 MB)
// as BatchLookup does, and no system call is made. A value is copied
// while the programs may be updating it, with the word-sized loads of Go's
// memmove: a read can see some of an update's counters and not others,
// as BatchLookup on an array can (the kernel copies array values without
// a lock too); the next read sees the rest, and each 8-byte counter is
// read whole (they are 8-byte aligned), so no counter is ever torn.
func readMapped(p *Passive, b *rsStatsBuf, fn func(n int)) (bool, error) {
	next := 0
	for first := true; ; first = false {
		n, done, err := readMapped1(p, b, &next)
		if first && n < 0 {
			return false, nil
		}
		if n > 0 {
			fn(n)
		}
		if done || err != nil {
			return true, err
		}
	}
}

// readMapped1 reads one batch of slots from *next on under p.mu, and
// moves *next past it: the entries read (-1: the map cannot be mapped),
// whether the reading is done, and the error that ended it.
func readMapped1(p *Passive, b *rsStatsBuf, next *int) (n int, done bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, true, ErrClosed
	}
	mem := p.rsStatsMemory(b)
	if mem == nil {
		return -1, true, nil
	}
	s := &p.slots
	i := *next
	for ; i < len(s.gen) && n < len(b.vals); i++ {
		g := s.gen[i]
		if g == 0 {
			continue
		}
		v := unsafe.Slice((*byte)(unsafe.Pointer(&b.vals[n])), rsStatsSize)
		if _, err := mem.ReadAt(v, int64(i)*rsStatsSize); err != nil {
			return n, true, fmt.Errorf("read rs_stats slot %d from its mapping: %w", i, err)
		}
		b.keys[n], b.slot[n], b.gen[n], b.ap[n], b.label[n] = uint32(i), int32(i), g, s.ap[i], s.label[i]
		n++
	}
	*next = i
	return n, i >= len(s.gen), nil
}
