package loader

import (
	"net/netip"
	"testing"
)

// TestPassiveFastPath: data segments and ACKs, which leave the programs
// on the IPv4 fast path (docs/benchmarks.md §16.2), are counted nowhere
// when well formed, and a malformed one still reaches the general parse
// and is counted by its reason, in both hooks.
func TestPassiveFastPath(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true})
	if err := p.SetRealServers([]netip.AddrPort{rs4, rs6}); err != nil {
		t.Fatal(err)
	}
	egress, ingress := p.Programs()
	data := pkt{src: client4, dst: rs4, flags: fACK, payload: 100}
	ack := pkt{src: rs4, dst: client4, flags: fACK}
	fin := pkt{src: rs4, dst: client4, flags: fACK | 0x01}
	mod := func(b pkt, f func(*pkt)) pkt { f(&b); return b }
	tests := []struct {
		name   string
		egress bool
		p      pkt
		reason func(*PassiveStats) uint64 // nil: counted nowhere
	}{
		{"data", true, data, nil},
		{"ack", false, ack, nil},
		{"fin", false, fin, nil},
		{"data v6", true, pkt{src: client6, dst: rs6, flags: fACK, payload: 100}, nil},
		{"data, ihl 6", true, mod(data, func(p *pkt) { p.ihl = 6 }), nil},
		{"data, ihl below 5", true, mod(data, func(p *pkt) { p.ihl = 4 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"ack, doff below 5", false, mod(ack, func(p *pkt) { p.doff = 4 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"ack, tot_len too short", false, mod(ack, func(p *pkt) { p.totLenDelta = -8 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"data, cut in the tcp header", true, mod(data, func(p *pkt) { p.cut = 110 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"data, fragment", true, mod(data, func(p *pkt) { p.fragOff = 0x2000 }), func(s *PassiveStats) uint64 { return s.Fragments }},
		{"ack, later fragment", false, mod(ack, func(p *pkt) { p.fragOff = 0x0010 }), func(s *PassiveStats) uint64 { return s.Fragments }},
		{"data, udp", true, mod(data, func(p *pkt) { p.ipProto = 17 }), func(s *PassiveStats) uint64 { return s.NotTCP }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			prog := ingress
			if tt.egress {
				prog = egress
			}
			run(t, prog, tt.p.build())
			after, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			moved := func(f func(*PassiveStats) uint64) uint64 { return f(&after) - f(&before) }
			want := uint64(0)
			if tt.reason != nil {
				want = 1
				if got := moved(tt.reason); got != 1 {
					t.Errorf("reason counter moved by %d, want 1 (stats %+v)", got, after)
				}
			}
			all := func(s *PassiveStats) uint64 {
				return s.HandshakePackets + s.NotIP + s.NotTCP + s.Fragments + s.IPv6ExtHeaders + s.Truncated + s.UnknownRS
			}
			if got := moved(all); got != want {
				t.Errorf("counters moved by %d in all, want %d: %+v -> %+v", got, want, before, after)
			}
			for _, rs := range []netip.AddrPort{rs4, rs6} {
				if c := counters(t, p, rs); !c.zero() || c.Refused != 0 {
					t.Errorf("%s counted: %+v", rs, c)
				}
			}
		})
	}
}
