package loader

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// mustLoadPassive loads the passive observer or skips where BPF is
// unavailable.
func mustLoadPassive(tb testing.TB, opts PassiveOptions) *Passive {
	tb.Helper()
	testenv.RequireRoot(tb)
	p, err := LoadPassive(opts)
	if errors.Is(err, ErrNotSupported) && VerifierLog(err) == "" {
		testenv.SkipOrFail(tb, "eBPF not available: "+err.Error())
	}
	if err != nil {
		tb.Fatalf("load passive: %v\n%s", err, VerifierLog(err))
	}
	if terr := p.TracepointsErr(); terr != nil && !opts.NoTracepoints {
		tb.Fatalf("tracepoints: %v\n%s", terr, VerifierLog(terr))
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// pkt describes a test packet; build turns it into an Ethernet frame.
type pkt struct {
	src, dst    netip.AddrPort
	flags       byte
	payload     int
	ipProto     byte // 0 means TCP
	v6Next      byte // an IPv6 extension header to put before TCP
	fragOff     uint16
	cut         int // bytes cut off the end
	ihl, doff   byte
	ethType     uint16
	totLenDelta int
	seq         uint32 // the TCP sequence when not 0 (else 1000, or 0 for a RST|ACK)
}

const (
	fSYN    = 0x02
	fRST    = 0x04
	fACK    = 0x10
	fSYNACK = fSYN | fACK
)

func (p pkt) build() []byte {
	proto := p.ipProto
	if proto == 0 {
		proto = 6
	}
	doff := p.doff
	if doff == 0 {
		doff = 5
	}
	l4 := make([]byte, int(doff)*4+p.payload)
	if proto == 6 {
		binary.BigEndian.PutUint16(l4[0:], p.src.Port())
		binary.BigEndian.PutUint16(l4[2:], p.dst.Port())
		if p.flags&(fRST|fACK) != fRST|fACK {
			// A RST|ACK answers a SYN here: sequence 0, as a
			// kernel's refusal; a plain RST resets a connection.
			binary.BigEndian.PutUint32(l4[4:], 1000)
		}
		if p.seq != 0 {
			binary.BigEndian.PutUint32(l4[4:], p.seq)
		}
		l4[12] = doff << 4
		l4[13] = p.flags
	} else if len(l4) >= 8 {
		binary.BigEndian.PutUint16(l4[0:], p.src.Port())
		binary.BigEndian.PutUint16(l4[2:], p.dst.Port())
	}
	var b []byte
	if p.src.Addr().Is4() {
		ihl := p.ihl
		if ihl == 0 {
			ihl = 5
		}
		ip := make([]byte, int(ihl)*4)
		if len(ip) < 20 {
			ip = make([]byte, 20)
		}
		ip[0] = 0x40 | ihl
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)+len(l4)+p.totLenDelta))
		binary.BigEndian.PutUint16(ip[6:], p.fragOff)
		ip[8] = 64
		ip[9] = proto
		s, d := p.src.Addr().As4(), p.dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		b = append(eth(0x0800), append(ip, l4...)...)
	} else {
		ip := make([]byte, 40)
		ip[0] = 0x60
		next := proto
		var ext []byte
		if p.v6Next != 0 {
			next = p.v6Next
			ext = make([]byte, 8)
			ext[0] = proto
		}
		binary.BigEndian.PutUint16(ip[4:], uint16(len(ext)+len(l4)+p.totLenDelta))
		ip[6] = next
		ip[7] = 64
		s, d := p.src.Addr().As16(), p.dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		b = append(eth(0x86dd), append(append(ip, ext...), l4...)...)
	}
	if p.ethType != 0 {
		binary.BigEndian.PutUint16(b[12:], p.ethType)
	}
	return b[:len(b)-p.cut]
}

func eth(typ uint16) []byte {
	b := make([]byte, 14)
	copy(b[0:], []byte{2, 0, 0, 0, 0, 1})
	copy(b[6:], []byte{2, 0, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(b[12:], typ)
	return b
}

var (
	rs4     = netip.MustParseAddrPort("198.18.7.2:80")
	client4 = netip.MustParseAddrPort("198.18.9.2:40000")
	rs6     = netip.MustParseAddrPort("[2001:db8::2]:443")
	client6 = netip.MustParseAddrPort("[2001:db8:1::2]:40000")
)

// skbContext is the head of struct __sk_buff up to ingress_ifindex, the
// one field the tests set: BPF_PROG_TEST_RUN runs a program as if the
// packet came in on that link (forwarded), where 0 means sent by the
// host itself.
type skbContext struct {
	_              [9]uint32
	IngressIfindex uint32
}

// forwarded is the context of a packet the director forwards.
var forwarded = skbContext{IngressIfindex: 1}

// run runs prog on frame, as a forwarded packet, and checks that the
// packet goes on untouched, leaving the verdict to the next program.
func run(tb testing.TB, prog *ebpf.Program, frame []byte) {
	tb.Helper()
	out := make([]byte, len(frame)+256)
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, DataOut: out, Context: forwarded})
	if err != nil {
		tb.Fatalf("run: %v", err)
	}
	if ret != tcActUnspec {
		tb.Errorf("returned %d, want TC_ACT_UNSPEC (the next program decides)", int32(ret))
	}
	if string(out[:len(frame)]) != string(frame) {
		tb.Errorf("packet changed")
	}
}

func TestPassiveLoads(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{})
	if err := p.SetRealServers([]netip.AddrPort{rs4, rs6}); err != nil {
		t.Fatal(err)
	}
}

// counters returns the TC counters of one real server.
func counters(tb testing.TB, p *Passive, rs netip.AddrPort) ClientCounters {
	tb.Helper()
	c, _, err := p.Counters()
	if err != nil {
		tb.Fatal(err)
	}
	v, ok := c[rs]
	if !ok {
		tb.Fatalf("%s not in the map (%v)", rs, c)
	}
	return v
}

// TestPassiveBadPackets: packets that are not plain TCP pass untouched and
// uncounted against any real server; each is counted by its reason.
func TestPassiveBadPackets(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true})
	if err := p.SetRealServers([]netip.AddrPort{rs4, rs6}); err != nil {
		t.Fatal(err)
	}
	egress, ingress := p.Programs()
	syn4 := pkt{src: client4, dst: rs4, flags: fSYN}
	rst4 := pkt{src: rs4, dst: client4, flags: fRST | fACK}
	syn6 := pkt{src: client6, dst: rs6, flags: fSYN}
	mod := func(b pkt, f func(*pkt)) pkt { f(&b); return b }
	tests := []struct {
		name   string
		egress bool
		p      pkt
		reason func(*PassiveStats) uint64
	}{
		{"truncated tcp header v4", true, mod(syn4, func(p *pkt) { p.cut = 10 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"truncated tcp header v6", true, mod(syn6, func(p *pkt) { p.cut = 1 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"ihl below 5", true, mod(syn4, func(p *pkt) { p.ihl = 4 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"tot_len too short", false, mod(rst4, func(p *pkt) { p.totLenDelta = -8 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"doff below 5", false, mod(rst4, func(p *pkt) { p.doff = 4 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"v6 payload too short", true, mod(syn6, func(p *pkt) { p.totLenDelta = -4 }), func(s *PassiveStats) uint64 { return s.Truncated }},
		{"first fragment", true, mod(syn4, func(p *pkt) { p.fragOff = 0x2000 }), func(s *PassiveStats) uint64 { return s.Fragments }},
		{"later fragment", false, mod(rst4, func(p *pkt) { p.fragOff = 0x0010 }), func(s *PassiveStats) uint64 { return s.Fragments }},
		{"v6 hop-by-hop", true, mod(syn6, func(p *pkt) { p.v6Next = 0; p.v6Next = 0 }), nil},
		{"v6 fragment header", true, mod(syn6, func(p *pkt) { p.v6Next = 44 }), func(s *PassiveStats) uint64 { return s.IPv6ExtHeaders }},
		{"v6 routing header", true, mod(syn6, func(p *pkt) { p.v6Next = 43 }), func(s *PassiveStats) uint64 { return s.IPv6ExtHeaders }},
		{"v6 destination options", false, mod(pkt{src: rs6, dst: client6, flags: fRST}, func(p *pkt) { p.v6Next = 60 }), func(s *PassiveStats) uint64 { return s.IPv6ExtHeaders }},
		{"udp", true, mod(syn4, func(p *pkt) { p.ipProto = 17 }), func(s *PassiveStats) uint64 { return s.NotTCP }},
		{"icmp", false, mod(rst4, func(p *pkt) { p.ipProto = 1 }), func(s *PassiveStats) uint64 { return s.NotTCP }},
		{"icmpv6", false, pkt{src: rs6, dst: client6, ipProto: 58}, func(s *PassiveStats) uint64 { return s.NotTCP }},
		{"arp", true, mod(syn4, func(p *pkt) { p.ethType = 0x0806 }), func(s *PassiveStats) uint64 { return s.NotIP }},
		{"vlan tag", false, mod(rst4, func(p *pkt) { p.ethType = 0x8100 }), func(s *PassiveStats) uint64 { return s.NotIP }},
		{"unknown real server", true, pkt{src: client4, dst: netip.MustParseAddrPort("198.18.7.3:80"), flags: fSYN}, func(s *PassiveStats) uint64 { return s.UnknownRS }},
		{"wrong port", false, pkt{src: netip.MustParseAddrPort("198.18.7.2:81"), dst: client4, flags: fRST}, func(s *PassiveStats) uint64 { return s.UnknownRS }},
	}
	// The hop-by-hop row: nexthdr 0 is spelled with v6Next's zero value,
	// so build it by hand.
	for i := range tests {
		if tests[i].name == "v6 hop-by-hop" {
			tests[i].reason = func(s *PassiveStats) uint64 { return s.IPv6ExtHeaders }
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			frame := tt.p.build()
			if tt.name == "v6 hop-by-hop" {
				frame = pkt{src: client6, dst: rs6, flags: fSYN, v6Next: 60}.build()
				frame[14+6] = 0 // nexthdr: hop-by-hop
			}
			prog := ingress
			if tt.egress {
				prog = egress
			}
			run(t, prog, frame)
			after, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.reason(&after) - tt.reason(&before); got != 1 {
				t.Errorf("reason counter moved by %d, want 1 (stats %+v)", got, after)
			}
			if after.HandshakePackets != before.HandshakePackets && tt.name != "unknown real server" && tt.name != "wrong port" {
				t.Errorf("counted as a TCP packet")
			}
			for _, rs := range []netip.AddrPort{rs4, rs6} {
				if c := counters(t, p, rs); !c.zero() || c.Refused != 0 {
					t.Errorf("%s counted: %+v", rs, c)
				}
			}
		})
	}
	// The control: the well-formed packets are counted.
	run(t, egress, syn4.build())
	run(t, ingress, rst4.build())
	run(t, egress, syn6.build())
	if c := counters(t, p, rs4); c.SYNs != 1 || c.Resets != 1 || c.Refused != 1 {
		t.Errorf("well-formed IPv4 packets: %+v", c)
	}
	if c := counters(t, p, rs6); c.SYNs != 1 {
		t.Errorf("well-formed IPv6 SYN: %+v", c)
	}
}

// TestPassiveConnectionReset: a RST|ACK with a non-zero sequence resets a
// connection, whatever the handshake table says: it counts as a reset,
// not a refusal, and leaves an in-flight handshake of the same 4-tuple
// in flight (the SYN's answer, sequence 0, is still a refusal).
func TestPassiveConnectionReset(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true})
	if err := p.SetRealServers([]netip.AddrPort{rs4}); err != nil {
		t.Fatal(err)
	}
	egress, ingress := p.Programs()
	run(t, egress, pkt{src: client4, dst: rs4, flags: fSYN}.build())
	run(t, ingress, pkt{src: rs4, dst: client4, flags: fRST | fACK, seq: 77}.build())
	if c := counters(t, p, rs4); c.Resets != 1 || c.Refused != 0 {
		t.Errorf("after a connection's reset: %+v, want 1 reset, 0 refused", c)
	}
	run(t, ingress, pkt{src: rs4, dst: client4, flags: fRST | fACK}.build())
	if c := counters(t, p, rs4); c.Resets != 2 || c.Refused != 1 {
		t.Errorf("after the refusal: %+v, want 2 resets, 1 refused", c)
	}
}

// TestPassiveHandshakes: SYN then SYN-ACK is timed; a SYN seen again is a
// retransmission (and its handshake not timed); a RST answering a SYN is a
// refusal; the director's own packets (its SYN-probe ports, its sockets)
// are not client traffic.
func TestPassiveHandshakes(t *testing.T) {
	for _, fam := range []struct {
		name       string
		rs, client netip.AddrPort
	}{{"ipv4", rs4, client4}, {"ipv6", rs6, client6}} {
		t.Run(fam.name, func(t *testing.T) {
			p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, ProbePortLo: 61000, ProbePortHi: 61999, HandshakeSample: 1})
			if err := p.SetRealServers([]netip.AddrPort{fam.rs}); err != nil {
				t.Fatal(err)
			}
			egress, ingress := p.Programs()
			c := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(fam.client.Addr(), port) }
			// 1: answered at once.
			run(t, egress, pkt{src: c(1), dst: fam.rs, flags: fSYN}.build())
			run(t, ingress, pkt{src: fam.rs, dst: c(1), flags: fSYNACK}.build())
			// 2: retransmitted, then answered.
			run(t, egress, pkt{src: c(2), dst: fam.rs, flags: fSYN}.build())
			run(t, egress, pkt{src: c(2), dst: fam.rs, flags: fSYN}.build())
			run(t, ingress, pkt{src: fam.rs, dst: c(2), flags: fSYNACK}.build())
			// 3: refused.
			run(t, egress, pkt{src: c(3), dst: fam.rs, flags: fSYN}.build())
			run(t, ingress, pkt{src: fam.rs, dst: c(3), flags: fRST | fACK}.build())
			// 4: a reset of an established connection.
			run(t, ingress, pkt{src: fam.rs, dst: c(1), flags: fRST}.build())
			// Data and plain ACKs are not counted.
			run(t, egress, pkt{src: c(1), dst: fam.rs, flags: fACK, payload: 100}.build())
			run(t, ingress, pkt{src: fam.rs, dst: c(1), flags: fACK, payload: 100}.build())
			// An answer to a SYN probe: not client traffic.
			run(t, ingress, pkt{src: fam.rs, dst: c(61500), flags: fRST | fACK}.build())
			// The director's own: a SYN it sends (no input link), an
			// answer to one of its addresses.
			if _, err := egress.Run(&ebpf.RunOptions{Data: pkt{src: c(5), dst: fam.rs, flags: fSYN}.build()}); err != nil {
				t.Fatal(err)
			}
			local := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 5)
			if fam.name == "ipv6" {
				local = netip.AddrPortFrom(netip.IPv6Loopback(), 5)
			}
			run(t, ingress, pkt{src: fam.rs, dst: local, flags: fRST | fACK}.build())
			got := counters(t, p, fam.rs)
			want := ClientCounters{SYNs: 4, SYNRetransmits: 1, SYNACKs: 2, Resets: 2, Refused: 1}
			if got.SYNs != want.SYNs || got.SYNRetransmits != want.SYNRetransmits || got.SYNACKs != want.SYNACKs ||
				got.Resets != want.Resets || got.Refused != want.Refused {
				t.Errorf("counters = %+v, want %+v", got, want)
			}
			if n := got.Latency.Count(); n != 1 {
				t.Errorf("timed %d handshakes, want 1 (the one without retransmission)", n)
			}
			if got.LatencySum <= 0 {
				t.Errorf("latency sum %v", got.LatencySum)
			}
			st, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.HandshakeMissed != 0 || st.HandshakeFull != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

// TestPassiveMapFull: real servers beyond the capacity are refused,
// counted and reported; SYNs that found their real server's handshake
// ways all in flight are counted, and so are their SYN-ACKs.
func TestPassiveMapFull(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{Capacity: 4, HandshakeCapacity: 64})
	var rss []netip.AddrPort
	for i := range 10 {
		rss = append(rss, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 7, byte(10 + i)}), 80))
	}
	err := p.SetRealServers(rss)
	if !errors.Is(err, ErrMapFull) {
		t.Fatalf("SetRealServers = %v, want ErrMapFull", err)
	}
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.MapFull != 6 {
		t.Errorf("map full = %d, want 6", st.MapFull)
	}
	c, _, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 4 {
		t.Errorf("%d real servers observed, want 4", len(c))
	}
	var rs netip.AddrPort
	for k := range c {
		rs = k
	}
	egress, ingress := p.Programs()
	const n = 1000
	for i := range n {
		run(t, egress, pkt{src: netip.AddrPortFrom(client4.Addr(), uint16(1000+i)), dst: rs, flags: fSYN}.build())
	}
	for i := range n {
		run(t, ingress, pkt{src: rs, dst: netip.AddrPortFrom(client4.Addr(), uint16(1000+i)), flags: fSYNACK}.build())
	}
	st, err = p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.HandshakeMissed+st.HandshakeFull < 2*(n-hsWays) {
		t.Errorf("handshakes lost to eight ways: missed %d + full %d, want at least %d", st.HandshakeMissed, st.HandshakeFull, 2*(n-hsWays))
	}
	// Shrinking the set frees room.
	if err := p.SetRealServers(rss[:2]); err != nil {
		t.Errorf("SetRealServers(2) = %v", err)
	}
}

// TestPassiveDRAndTUN: in LVS-DR the client's SYN keeps the virtual
// address and goes to the real server's MAC; in LVS-TUN it is wrapped in
// IPIP to the real server. Both count for the real server; a DR frame to
// an unknown MAC does not.
func TestPassiveDRAndTUN(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true})
	dr := netip.MustParseAddrPort("198.18.7.5:80")
	tun := netip.MustParseAddrPort("198.18.7.6:80")
	if err := p.SetRealServers([]netip.AddrPort{dr, tun}); err != nil {
		t.Fatal(err)
	}
	mac := [6]byte{2, 0, 0, 0, 0, 1} // eth()'s destination
	if err := p.SetDirectRouted(map[DRKey]netip.AddrPort{{MAC: mac, Port: 80}: dr}); err != nil {
		t.Fatal(err)
	}
	egress, _ := p.Programs()
	vip := netip.MustParseAddrPort("198.18.250.1:80")
	syn := pkt{src: client4, dst: vip, flags: fSYN}.build()
	run(t, egress, syn)
	run(t, egress, syn) // retransmitted
	other := append([]byte(nil), syn...)
	other[5] = 9 // another MAC
	run(t, egress, other)
	if c := counters(t, p, dr); c.SYNs != 2 || c.SYNRetransmits != 1 {
		t.Errorf("DR: %+v, want 2 SYNs, 1 retransmission", c)
	}
	// IPIP: an outer IPv4 header to the real server around the SYN.
	inner := pkt{src: client4, dst: vip, flags: fSYN}.build()[14:]
	outer := pkt{src: netip.MustParseAddrPort("198.18.7.1:0"), dst: netip.AddrPortFrom(tun.Addr(), 0), ipProto: 4}.build()[:14+20]
	binary.BigEndian.PutUint16(outer[14+2:], uint16(20+len(inner)))
	run(t, egress, append(outer, inner...))
	if c := counters(t, p, tun); c.SYNs != 1 {
		t.Errorf("TUN: %+v, want 1 SYN", c)
	}
	if err := p.SetDirectRouted(nil); err != nil {
		t.Fatal(err)
	}
	run(t, egress, syn)
	if c := counters(t, p, dr); c.SYNs != 2 {
		t.Errorf("DR after the MAC was removed: %+v", c)
	}
}

// TestPassiveEventGap: RSTs of established connections (the coarse clock
// tests the gap) send one event per gap and real server: a RST right
// after an event sends none, one after the gap sends the next.
func TestPassiveEventGap(t *testing.T) {
	const gap = 40 * time.Millisecond // above the coarse clock's threshold (20 ms)
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, EventGap: gap})
	if err := p.SetRealServers([]netip.AddrPort{rs4}); err != nil {
		t.Fatal(err)
	}
	_, ingress := p.Programs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	reset := pkt{src: rs4, dst: client4, flags: fRST}.build()
	run(t, ingress, reset)
	first := waitEvent(t, p, EventReset, rs4)
	run(t, ingress, reset) // within the gap: no event
	// Time passing is what is tested: the gap and two ticks of the
	// coarse clock (HZ 100).
	time.Sleep(gap + 20*time.Millisecond)
	run(t, ingress, reset)
	second := waitEvent(t, p, EventReset, rs4)
	if d := time.Duration(second.KtimeNs - first.KtimeNs); d < gap {
		t.Errorf("second event %v after the first, want >= %v (the RST within the gap sent one)", d, gap)
	}
	if c := counters(t, p, rs4); c.Resets != 3 {
		t.Errorf("resets = %d, want 3", c.Resets)
	}
}
