package synprobe

import (
	"net"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/vishvananda/netlink"
)

// TestTxRingWraps sends frames through the TX ring of a (plain) veth,
// round the ring three times and a bit, in batches of several sizes:
// every frame leaves the link once (its tx counters), the ring's head
// follows the kernel's round the wrap, and nothing is left waiting or
// sent through the sendmmsg fallback.
func TestTxRingWraps(t *testing.T) {
	testenv.RequireRoot(t)
	n := testnet.New(t, testnet.Options{})
	rs := n.RealServers[0]
	hole := blackHoleAddr(t, rs)
	ifi, err := net.InterfaceByName(rs.Link)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCookies()
	if err != nil {
		t.Fatal(err)
	}
	s := newSender(64)
	defer s.close()
	if err := s.openFrames(); err != nil {
		t.Fatal(err)
	}
	f := holeFrame(t, rs, hole)
	txCount := func() uint64 {
		l, err := netlink.LinkByIndex(ifi.Index)
		if err != nil {
			t.Fatal(err)
		}
		st := l.Attrs().Statistics
		return st.TxPackets + st.TxDropped
	}
	before := txCount()
	total := 3*ringSlots + 17
	ps := make([]probe, 0, 300)
	sizes := []int{1, 7, 64, 65, 200, 3, 129}
	for sent, round := 0, 0; sent < total; round++ {
		k := min(sizes[round%len(sizes)], total-sent)
		ps = ps[:0]
		for i := range k {
			lport := uint16(61000 + (sent+i)%1000)
			ps = append(ps, probe{local: rs.Director, remote: hole, lport: lport, rport: 9, f: f,
				seq: c.seq(rs.Director, hole, lport, 9)})
		}
		got, err := s.send(ps)
		if err != nil || got != k {
			t.Fatalf("send %d frames: %d, %v", k, got, err)
		}
		sent += k
	}
	if s.ringErr != nil {
		t.Fatalf("no TX ring: %v", s.ringErr)
	}
	r := s.rings[ifi.Index]
	if r == nil || r.queued != 0 || r.head != total%ringSlots {
		t.Fatalf("ring %+v: want nothing queued and the head at %d", r, total%ringSlots)
	}
	// A plain veth counts a frame in its sender's system call. The
	// kernel may send a packet or two of its own on the new link
	// meanwhile (IPv6 neighbour discovery); a lost frame, or slots sent
	// again after a wrap, would still show.
	if got := txCount() - before; got < uint64(total) || got > uint64(total)+2 {
		t.Errorf("link counted %d frames out, want %d", got, total)
	}
}

// TestTxRingLinkDown: frames for a link that is down are given up at
// once (counted for the send-error metric), not kept waiting; once the
// link is up again the ring goes on from where the kernel stopped, and
// every new frame leaves once.
func TestTxRingLinkDown(t *testing.T) {
	testenv.RequireRoot(t)
	n := testnet.New(t, testnet.Options{})
	rs := n.RealServers[0]
	hole := blackHoleAddr(t, rs)
	link, err := netlink.LinkByName(rs.Link)
	if err != nil {
		t.Fatal(err)
	}
	s := newSender(64)
	defer s.close()
	if err := s.openFrames(); err != nil {
		t.Fatal(err)
	}
	f := holeFrame(t, rs, hole)
	batch := func(k int) []probe {
		ps := make([]probe, k)
		for i := range ps {
			ps[i] = probe{local: rs.Director, remote: hole, lport: uint16(61000 + i), rport: 9, f: f, seq: uint32(i)}
		}
		return ps
	}
	txCount := func() uint64 {
		l, err := netlink.LinkByIndex(link.Attrs().Index)
		if err != nil {
			t.Fatal(err)
		}
		st := l.Attrs().Statistics
		return st.TxPackets + st.TxDropped
	}
	if got, err := s.send(batch(5)); got != 5 || err != nil { // the ring opens, the head moves to 5
		t.Fatalf("send: %d, %v", got, err)
	}
	if err := netlink.LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	s.send(batch(30))
	r := s.rings[link.Attrs().Index]
	if d := s.takeDropped(); d != 30 || r.queued != 0 {
		t.Fatalf("link down: %d frames given up, %d queued; want 30, 0", d, r.queued)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	before := txCount()
	if got, err := s.send(batch(40)); got != 40 || err != nil {
		t.Fatalf("send after link up: %d, %v", got, err)
	}
	if d := s.takeDropped(); d != 0 || r.queued != 0 || r.head != 45 {
		t.Fatalf("after link up: dropped %d, queued %d, head %d; want 0, 0, 45", d, r.queued, r.head)
	}
	// The kernel may send a packet or two of its own as the link comes
	// up (IPv6 neighbour discovery).
	if got := txCount() - before; got < 40 || got > 42 {
		t.Errorf("link counted %d frames out, want 40", got)
	}
}
