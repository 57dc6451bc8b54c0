package synprobe

import (
	"errors"
	"math"
	"net/netip"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newBareProber is a prober with no sockets, for the bookkeeping alone.
func newBareProber(t testing.TB) *Prober {
	t.Helper()
	c, err := newCookies()
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(nil, func() float64 { return 0 }, func() float64 { return 0 }, func() (loader.Stats, bool) { return loader.Stats{}, false })
	if err != nil {
		t.Fatal(err)
	}
	return &Prober{
		cfg: DefaultConfig(), ports: portRange{62000, 62999}, cookies: c, m: m,
		signals: make(chan []Signal, 16), targets: map[netip.AddrPort]*target{},
	}
}

// TestSettleByKernelTime: an answer counts for the probe it acknowledges
// when the kernel saw it before the next probe left, however late Go
// handles it; a miss is declared only once the receiver has drained past
// the next probe's departure.
func TestSettleByKernelTime(t *testing.T) {
	p := newBareProber(t)
	local := netip.MustParseAddr("198.18.0.1")
	addr := netip.MustParseAddrPort("198.18.0.2:80")
	tg := &target{addr: addr, path: &path{local: local}, interval: 100, next: 100}
	p.targets[addr] = tg
	p.dueAdd(tg)
	send := func(now uint64) sent {
		t.Helper()
		var bs batches
		bs.init(4, 4)
		p.collect(now, now, &bs, math.MaxInt)
		if len(bs.v4) != 1 {
			t.Fatalf("at %d: %d probes due, want 1", now, len(bs.v4))
		}
		return tg.cur
	}
	answer := func(pr sent, ktime uint64, ack uint32) error {
		seq := p.cookies.seq(local, addr.Addr(), pr.lport, 80)
		a := answer{src: addr.Addr(), dst: local, sport: 80, dport: pr.lport, ack: seq + 1 + ack, flags: flagSYN | flagACK}
		return p.settle(ktime, &a)
	}
	misses := func() float64 { return testutil.ToFloat64(p.m.misses) }

	g1 := send(100)
	g2 := send(200)
	if err := answer(g1, 150, 0); err != nil {
		t.Fatalf("answer to probe 1, seen at 150, handled after probe 2 left: %v", err)
	}
	if err := answer(g1, 160, 0); !errors.Is(err, errDuplicate) {
		t.Errorf("second answer to probe 1: %v, want duplicate", err)
	}
	if st, _ := p.Snapshot(addr); st.LastRTT != 50 || !st.SynAckSeen || st.Answered != 1 {
		t.Errorf("after answer: %+v", st)
	}
	p.settleMisses(1000)
	if misses() != 0 {
		t.Errorf("answered probe counted as a miss")
	}
	send(300) // probe 2 unanswered so far
	if err := answer(g2, 350, 0); !errors.Is(err, errLate) {
		t.Errorf("answer to probe 2 seen after probe 3 left: %v, want late", err)
	}
	p.settleMisses(250)
	if misses() != 0 {
		t.Errorf("miss declared before the receiver drained past probe 3's departure")
	}
	p.settleMisses(301)
	if misses() != 1 {
		t.Errorf("misses = %v, want 1", misses())
	}
	var kinds []Kind
	for len(p.signals) > 0 {
		for _, s := range <-p.signals {
			kinds = append(kinds, s.Kind)
			if s.Kind == Miss && s.ConsecutiveMisses != 1 {
				t.Errorf("miss signal %+v", s)
			}
		}
	}
	if len(kinds) != 2 || kinds[0] != SynAck || kinds[1] != Miss {
		t.Errorf("signals %v, want [synack miss]", kinds)
	}
	if err := answer(g1, 150, 1); !errors.Is(err, errBadCookie) {
		t.Errorf("wrong ack: %v, want bad_cookie", err)
	}
}

// TestRemoveKeepsOrder: removing targets from the middle of the due heap
// keeps the rest due in time order, and answers for removed targets are
// unknown.
func TestRemoveKeepsOrder(t *testing.T) {
	p := newBareProber(t)
	local := netip.MustParseAddr("198.18.0.1")
	var addrs []netip.AddrPort
	for i := range 20 {
		a := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), uint16(1000+i))
		tg := &target{addr: a, path: &path{local: local}, interval: 1000, next: uint64((i * 7919) % 20)}
		p.targets[a] = tg
		p.dueAdd(tg)
		addrs = append(addrs, a)
	}
	for _, i := range []int{3, 0, 19, 11} {
		p.Remove(addrs[i])
	}
	p.Remove(addrs[3]) // twice is fine
	if p.due.Len() != 16 || len(p.targets) != 16 {
		t.Fatalf("%d due, %d targets after removing 4 of 20", p.due.Len(), len(p.targets))
	}
	last := uint64(0)
	for p.due.Len() > 0 {
		tg := p.due.peek()
		if tg.next < last {
			t.Fatalf("due out of order: %d after %d", tg.next, last)
		}
		last = tg.next
		p.Remove(tg.addr)
	}
	a := answer{src: addrs[3].Addr(), dst: local, sport: addrs[3].Port(), dport: 62000, flags: flagSYN | flagACK}
	if err := p.settle(5, &a); !errors.Is(err, errUnknown) {
		t.Errorf("answer for a removed target: %v, want unknown_target", err)
	}
}
