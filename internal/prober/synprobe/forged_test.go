package synprobe

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"golang.org/x/sys/unix"
)

// injector sends raw Ethernet frames from a real server's eth0 to the
// director's end of the link, bypassing the real server's TCP/IP stack.
type injector struct {
	fd       int
	ifindex  int
	src, dst net.HardwareAddr
}

func newInjector(tb testing.TB, rs *testnet.RealServer) *injector {
	tb.Helper()
	dir, err := net.InterfaceByName(rs.Link)
	if err != nil {
		tb.Fatal(err)
	}
	in := &injector{dst: dir.HardwareAddr}
	err = rs.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		in.ifindex, in.src = ifi.Index, ifi.HardwareAddr
		in.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		tb.Fatalf("open injector in %s: %v", rs.Name, err)
	}
	tb.Cleanup(func() { unix.Close(in.fd) })
	return in
}

// send sends pkt (from its IP header on) in an Ethernet frame padded to
// the minimum frame size.
func (in *injector) send(tb testing.TB, pkt []byte) {
	tb.Helper()
	ethType := uint16(unix.ETH_P_IP)
	if pkt[0]>>4 == 6 {
		ethType = unix.ETH_P_IPV6
	}
	f := make([]byte, 14, 14+len(pkt)+46)
	copy(f[0:], in.dst)
	copy(f[6:], in.src)
	binary.BigEndian.PutUint16(f[12:], ethType)
	f = append(f, pkt...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	sa := &unix.SockaddrLinklayer{Ifindex: in.ifindex, Halen: 6, Protocol: htons(ethType)}
	copy(sa.Addr[:], in.dst)
	if err := unix.Sendto(in.fd, f, 0, sa); err != nil {
		tb.Fatalf("inject: %v", err)
	}
}

// fixIPv4 recomputes the IPv4 header checksum of pkt.
func fixIPv4(pkt []byte) []byte {
	binary.BigEndian.PutUint16(pkt[10:], 0)
	binary.BigEndian.PutUint16(pkt[10:], ^fold(sum16(0, pkt[:20])))
	return pkt
}

func TestForgedAnswers(t *testing.T) {
	for _, mode := range []ReceiverMode{ReceiverEBPF, ReceiverPacket} {
		t.Run(map[ReceiverMode]string{ReceiverEBPF: "ebpf", ReceiverPacket: "packet"}[mode], func(t *testing.T) {
			testForgedAnswers(t, mode)
		})
	}
}

func testForgedAnswers(t *testing.T, mode ReceiverMode) {
	n := testnet.New(t, testnet.Options{})
	rs := n.RealServers[0]
	rs.Listen(t, "tcp", ":8080")
	in := newInjector(t, rs)
	// One probe only: the interval is long and the first probe is due now.
	p, _ := newTestProber(t, n, Config{Interval: time.Hour, Receiver: mode, PortLo: 62000, PortHi: 62999})
	outcomes := make(chan error, 64)
	p.observe = func(err error) { outcomes <- err }
	target := netip.AddrPortFrom(rs.Addr, 8080)
	if err := p.Add(target, 0); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	tg := p.targets[target]
	tg.next = 0
	p.due.reschedule(tg)
	p.mu.Unlock()
	start(t, p)

	next := func() error {
		t.Helper()
		select {
		case err := <-outcomes:
			return err
		case <-time.After(waitTimeout):
			st, _ := p.Snapshot(target)
			var ks any
			if r, ok := p.recv.(*ebpfReceiver); ok {
				ks, _ = r.sp.Stats()
			}
			t.Fatalf("no packet reached the prober; target %+v kernel %+v", st, ks)
			return nil
		}
	}
	if err := next(); err != nil {
		t.Fatalf("the real answer was rejected: %v", err)
	}
	p.mu.Lock()
	lport, local := tg.cur.lport, tg.path.local
	p.mu.Unlock()
	seq := p.cookies.seq(local, rs.Addr, lport, 8080)
	other := p.ports.lo + (lport-p.ports.lo+1)%uint16(p.ports.size())
	otherSeq := p.cookies.seq(local, rs.Addr, other, 8080)
	synack := func(sport, dport uint16, ack uint32) []byte {
		return buildPacket(rs.Addr, local, sport, dport, flagSYN|flagACK, 777, ack)
	}
	badTCP := synack(8080, lport, seq+1)
	badTCP[36] ^= 0x5a
	badIP := synack(8080, lport, seq+1)
	badIP[10] ^= 0x5a
	// The IP header says the segment ends 10 bytes in; the rest of the TCP
	// header follows as link-layer padding, where a careless parser reads it.
	short := synack(8080, lport, seq+1)
	binary.BigEndian.PutUint16(short[2:], 30)
	fixIPv4(short)

	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"duplicate", synack(8080, lport, seq+1), errDuplicate},
		{"wrong ack", synack(8080, lport, seq+2), errBadCookie},
		{"ack of seq", synack(8080, lport, seq), errBadCookie},
		{"late (earlier probe's port)", synack(8080, other, otherSeq+1), errLate},
		{"bad tcp checksum", badTCP, errChecksum},
		{"bad ip checksum", badIP, errChecksum},
		{"truncated tcp header", short, errMalformed},
		{"unknown target", buildPacket(rs.Addr, local, 9999, lport, flagRST|flagACK, 0, seq+1), errUnknown},
		{"rst without ack", buildPacket(rs.Addr, local, 8080, lport, flagRST, seq+1, 0), errNotAnswer},
	}
	for _, tt := range tests {
		in.send(t, tt.pkt)
		if got := next(); !errors.Is(got, tt.want) {
			t.Errorf("%s: outcome %v, want %v", tt.name, got, tt.want)
		}
	}
	st, _ := p.Snapshot(target)
	if st.Answered != 1 || !st.SynAckSeen || st.RSTSeen || st.Sent != 1 {
		t.Errorf("forgeries changed the target's state: %+v", st)
	}
}
