package loader

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// rsMemory is rs_stats mapped read-only into the process (the map is
// BPF_F_MMAPABLE, for its alignment: see bpf/passive.c). Reads of the
// counters copy them from it, one atomic 64-bit load per field word (the
// programs add to them meanwhile), instead of batch lookups: no system
// call and no kernel copy per batch. Since home slots spread the real
// servers over the whole array, a poll reads every slot.
type rsMemory struct {
	b []byte
}

// rsWords is the number of 64-bit words of struct passive_rs_stats.
const rsWords = int(unsafe.Sizeof(passivePassiveRsStats{}) / 8)

// mapRSStats maps m (rs_stats), or returns nil when m is not mappable
// (an object without BPF_F_MMAPABLE, a benchmark's older one) or its
// values are not the generated type's.
func mapRSStats(m *ebpf.Map) (*rsMemory, error) {
	if m.Flags()&unix.BPF_F_MMAPABLE == 0 || int(m.ValueSize()) != rsWords*8 ||
		unsafe.Sizeof(passivePassiveRsStats{})%8 != 0 || m.MaxEntries() == 0 {
		return nil, nil
	}
	page := os.Getpagesize()
	size := (int(m.MaxEntries())*int(m.ValueSize()) + page - 1) &^ (page - 1)
	b, err := unix.Mmap(m.FD(), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map rs_stats: %w", err)
	}
	return &rsMemory{b: b}, nil
}

// close unmaps the memory; nil does nothing.
func (r *rsMemory) close() error {
	if r == nil || r.b == nil {
		return nil
	}
	err := unix.Munmap(r.b)
	r.b = nil
	if err != nil {
		return fmt.Errorf("unmap rs_stats: %w", err)
	}
	return nil
}

// read copies the entries of slots first, first+1, ... into out.
func (r *rsMemory) read(first int, out []passivePassiveRsStats) {
	if len(out) == 0 {
		return
	}
	if (first+len(out))*rsWords*8 > len(r.b) {
		panic(fmt.Sprintf("rs_stats read of slots %d+%d beyond the mapping", first, len(out)))
	}
	base := unsafe.Pointer(&r.b[0])
	for i := range out {
		src := (*[rsWords]uint64)(unsafe.Add(base, (first+i)*rsWords*8))
		dst := (*[rsWords]uint64)(unsafe.Pointer(&out[i]))
		for w := range dst {
			dst[w] = atomic.LoadUint64(&src[w])
		}
	}
}

// fromMemory fills b with the next batch of rs_stats entries from the
// mapping, when m is rs_stats and mapped (ok false otherwise): n entries,
// their keys the slots, and whether the read reached the last slot in
// use. Under p.mu.
func fromMemory[K, V any](p *Passive, m *ebpf.Map, b *batchBuf[K, V]) (n int, done, ok bool) {
	if p.rsMem == nil || m != p.tc.RsStats {
		return 0, false, false
	}
	keys, ok1 := any(b.keys).([]uint32)
	vals, ok2 := any(b.vals).([]passivePassiveRsStats)
	if !ok1 || !ok2 {
		return 0, false, false
	}
	n = max(0, min(len(keys), len(p.slots.ap)-b.next))
	for i := range n {
		keys[i] = uint32(b.next + i)
	}
	p.rsMem.read(b.next, vals[:n])
	b.next += n
	return n, b.next >= len(p.slots.ap), true
}
