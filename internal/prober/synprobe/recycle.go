package synprobe

import "sync"

// Batches handed back by the consumer ([Prober.Recycle]) are reused for
// later drains instead of allocating one per drain: at 10,000 targets the
// signal batches were over half of lvsprobe's steady allocation (~240
// bytes per TCP_CHECK), and every byte allocated is collection work, or
// heap held in reserve (GOGC). Only a few batches of a bounded capacity
// are kept, so one large drain does not stay in the heap for good.
const (
	spareBatches  = 8    // batches kept for reuse (several: the consumer may hand back a run of them)
	spareBatchMax = 2048 // signals: a batch with a larger capacity is left to the GC (128 KiB)
	spareCapMax   = 4096 // signals kept in all (256 KiB)
)

// batchPool holds batches given back for reuse. The zero value is ready.
type batchPool struct {
	mu   sync.Mutex
	free [][]Signal
	kept int // the capacities of free, in signals
}

// get returns an empty batch with room for about n signals: a recycled
// one when there is one, else a new one.
func (b *batchPool) get(n int) []Signal {
	b.mu.Lock()
	if k := len(b.free); k > 0 {
		s := b.free[k-1]
		b.free[k-1] = nil
		b.free = b.free[:k-1]
		b.kept -= cap(s)
		b.mu.Unlock()
		return s
	}
	b.mu.Unlock()
	return make([]Signal, 0, n)
}

// put keeps s for reuse unless enough are kept or it is too large.
func (b *batchPool) put(s []Signal) {
	if cap(s) == 0 || cap(s) > spareBatchMax {
		return
	}
	b.mu.Lock()
	if len(b.free) < spareBatches && b.kept+cap(s) <= spareCapMax {
		b.free = append(b.free, s[:0])
		b.kept += cap(s)
	}
	b.mu.Unlock()
}

// Recycle gives back a batch received from [Prober.Signals] once the
// caller is done with it (it must not be used afterwards): the prober
// reuses it for a later batch. Optional; a batch not given back is
// simply collected.
func (p *Prober) Recycle(batch []Signal) { p.spare.put(batch) }
