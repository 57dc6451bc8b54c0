package synprobe

import (
	"math"
	"net/netip"
	"testing"
)

// BenchmarkCollectSettle measures the send loop's bookkeeping of a probe
// from its departure to its settlement, without system calls: 10,000
// targets every 100 ms, collected and stamped one 1 ms tick at a time,
// each probe answered (a valid SYN-ACK through settle, 0.5 ms after it
// left), and once a tick what the loop does after a drain: settleMisses
// and the wait's nextDeadline. One target in 100 never answers (a
// black hole: its misses are settled too).
func BenchmarkCollectSettle(b *testing.B) {
	p := newBareProber(b)
	p.signals = make(chan []Signal, 1) // the consumer falls behind: signals are dropped, not kept
	local := netip.MustParseAddr("198.18.0.1")
	const targets, interval, tick = 10000, uint64(100e6), uint64(1e6)
	for i := range targets {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(1 + i/500), 2}), uint16(20000+i%500))
		tg := &target{addr: a, path: &path{local: local}, interval: interval, next: uint64(i) * interval / targets,
			base: uint32(i * 7919)}
		p.targets[a] = tg
		p.dueAdd(tg)
	}
	var bs batches
	bs.init(64, 64)
	var ans []answer
	now := uint64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		now += tick
		// The answers to the last tick's probes, then the drain's
		// settlement and the wait.
		for i := range ans {
			_ = p.settle(now-tick/2, &ans[i])
		}
		ans = ans[:0]
		p.settleMisses(now)
		p.mu.Lock()
		_, _ = p.nextDeadline()
		p.mu.Unlock()
		for {
			p.collect(now, now+tick, &bs, math.MaxInt)
			if bs.len() == 0 {
				break
			}
			p.stamp(bs.v4)
			for _, pr := range bs.v4 {
				if pr.rport%100 == 0 {
					continue // the black holes
				}
				ans = append(ans, answer{src: pr.remote, dst: pr.local, sport: pr.rport, dport: pr.lport, ack: pr.seq + 1, flags: flagSYN | flagACK})
			}
			sent += bs.len()
		}
	}
}
