package synprobe

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// TestBackedOffMissDeadline: with the probe rate backed off (pinned at
// 1/8 and 1/16 of the nominal: a probe every 0.8 s, 1.6 s, at an interval
// of 100 ms), a real server black-holed by nftables yields its first Miss
// one nominal interval after its first unanswered probe left, not at its
// successor's departure: when the miss arrives, the probe it is about is
// still the newest sent (sent = answered + 1). The order of sends and
// signals is asserted, not their times.
func TestBackedOffMissDeadline(t *testing.T) {
	for _, tt := range []struct {
		name     string
		receiver ReceiverMode
		rate     float64
	}{
		{"ebpf/rate-1/8", ReceiverEBPF, 1.0 / 8},
		{"ebpf/rate-1/16", ReceiverEBPF, 1.0 / 16},
		{"packet/rate-1/8", ReceiverPacket, 1.0 / 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := testnet.New(t, testnet.Options{RealServers: 1})
			rs := n.RealServers[0]
			rs.Listen(t, "tcp", ":8080")
			p, _ := newTestProber(t, n, Config{Interval: 100 * time.Millisecond, Receiver: tt.receiver, PortLo: 62000, PortHi: 62999})
			p.pinRate = tt.rate
			target := netip.AddrPortFrom(rs.Addr, 8080)
			if err := p.Add(target, 0); err != nil {
				t.Fatal(err)
			}
			start(t, p)
			waitSignals(t, p, map[netip.AddrPort]want{target: {kind: SynAck}})
			if !p.BackedOff() {
				t.Fatalf("prober not backed off with the rate pinned at %v", tt.rate)
			}
			rs.BlackHole(t)

			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			for {
				select {
				case batch := <-p.Signals():
					for _, s := range batch {
						if s.Target != target || s.Kind != Miss {
							continue
						}
						st, _ := p.Snapshot(target)
						t.Logf("first miss handed over %v after its deadline", time.Duration(loader.Ktime()-s.Stamp))
						if s.ConsecutiveMisses != 1 {
							t.Errorf("first miss: %+v, want 1 consecutive miss", s)
						}
						// The missed probe is the first unanswered one
						// (the namespace loses nothing before the black
						// hole), and its successor has not left yet.
						if st.Sent != st.Answered+1 {
							t.Errorf("first miss declared with %d probes sent, %d answered: want the missed probe the newest (sent = answered + 1), its successor not left yet", st.Sent, st.Answered)
						}
						return
					}
				case <-ctx.Done():
					t.Fatal("no miss after the black hole")
				}
			}
		})
	}
}
