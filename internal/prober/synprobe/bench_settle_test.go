package synprobe

import (
	"math"
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
	const tick = uint64(1e6)
	bs := benchTargets(p)
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
			p.collect(now, now+tick, bs, math.MaxInt)
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
