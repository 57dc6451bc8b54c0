package synprobe

import (
	"math"
	"net/netip"
	"testing"
)

// BenchmarkCollect measures the send loop's bookkeeping alone (no
// system call): 10,000 targets every 100 ms, taken from the due heap,
// settled, given a port and a cookie, batched and stamped, one 1 ms tick
// at a time.
func BenchmarkCollect(b *testing.B) {
	p := newBareProber(b)
	const tick = uint64(1e6)
	bs := benchTargets(p)
	now := uint64(0)
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		now += tick
		for {
			p.collect(now, now+tick, bs, math.MaxInt)
			if bs.len() == 0 {
				break
			}
			p.stamp(bs.v4)
			sent += bs.len()
		}
		p.unsettled = p.unsettled[:0] // no receiver here to settle them
		for i := range p.deadlines.qs {
			q := &p.deadlines.qs[i]
			q.q, q.head = q.q[:0], 0
		}
	}
}

// benchTargets gives p the collect benchmarks' 10,000 targets, due every
// 100 ms and spread evenly over the interval, and returns batches for
// collecting them.
func benchTargets(p *Prober) *batches {
	local := netip.MustParseAddr("198.18.0.1")
	const targets, interval = 10000, uint64(100e6)
	for i := range targets {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(1 + i/500), 2}), uint16(20000+i%500))
		tg := &target{addr: a, path: &path{local: local}, interval: interval, next: uint64(i) * interval / targets,
			base: uint32(i * 7919)}
		p.targets[a] = tg
		p.dueAdd(tg)
	}
	bs := &batches{}
	bs.init(64, 64)
	return bs
}
