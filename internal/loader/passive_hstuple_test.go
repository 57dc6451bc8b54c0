package loader

import (
	"net/netip"
	"testing"
)

// TestPassiveHandshakeTuples: the handshake hash tells apart SYNs whose
// 4-tuples differ in one field only (any change to hs_hash must keep
// this), so a new connection is not taken for a retransmission, and a
// SYN-ACK times only its own handshake.
func TestPassiveHandshakeTuples(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.9.1")
	v6 := netip.MustParseAddr("2001:db8::9:1")
	for _, tc := range []struct {
		name string
		rs   netip.AddrPort
		a, b netip.AddrPort // two clients of the same real server
	}{
		{"ipv4 client port", rs4, netip.AddrPortFrom(v4, 1000), netip.AddrPortFrom(v4, 1001)},
		{"ipv4 client port high byte", rs4, netip.AddrPortFrom(v4, 0x0100), netip.AddrPortFrom(v4, 0x0200)},
		{"ipv4 client address", rs4, netip.AddrPortFrom(v4, 1000), netip.AddrPortFrom(netip.MustParseAddr("198.18.9.2"), 1000)},
		{"ipv4 client address first byte", rs4, netip.AddrPortFrom(v4, 1000), netip.AddrPortFrom(netip.MustParseAddr("199.18.9.1"), 1000)},
		{"ipv4 port equal to the server's", rs4, netip.AddrPortFrom(v4, rs4.Port()), netip.AddrPortFrom(v4, rs4.Port()+1)},
		{"ipv6 client port", rs6, netip.AddrPortFrom(v6, 1000), netip.AddrPortFrom(v6, 1001)},
		{"ipv6 client address last word", rs6, netip.AddrPortFrom(v6, 1000), netip.AddrPortFrom(netip.MustParseAddr("2001:db8::9:2"), 1000)},
		{"ipv6 client address first word", rs6, netip.AddrPortFrom(v6, 1000), netip.AddrPortFrom(netip.MustParseAddr("2001:db9::9:1"), 1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, HandshakeSample: 1})
			if err := p.SetRealServers([]netip.AddrPort{tc.rs}); err != nil {
				t.Fatal(err)
			}
			egress, ingress := p.Programs()
			run(t, egress, pkt{src: tc.a, dst: tc.rs, flags: fSYN}.build())
			run(t, egress, pkt{src: tc.b, dst: tc.rs, flags: fSYN}.build())
			run(t, ingress, pkt{src: tc.rs, dst: tc.b, flags: fSYNACK}.build())
			run(t, ingress, pkt{src: tc.rs, dst: tc.a, flags: fSYNACK}.build())
			// The same tuple again after its SYN-ACK: a new handshake.
			run(t, egress, pkt{src: tc.a, dst: tc.rs, flags: fSYN}.build())
			got := counters(t, p, tc.rs)
			if got.SYNs != 3 || got.SYNRetransmits != 0 || got.SYNACKs != 2 {
				t.Errorf("counters = %+v, want 3 SYNs, 0 retransmissions, 2 SYN-ACKs", got)
			}
			if n := got.Latency.Count(); n != 2 {
				t.Errorf("timed %d handshakes, want 2", n)
			}
			st, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.HandshakeMissed != 0 {
				t.Errorf("%d SYN-ACKs found no handshake, want 0", st.HandshakeMissed)
			}
		})
	}
}
