package prober

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// serve accepts and resets connections on l until it is closed.
func serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.Close()
	}
}

// TestSchedulerRealTCP runs the scheduler with real TCP_CHECKs against a
// real listener — in a real-server namespace when the test binary runs
// under testnet.Main, on loopback otherwise — and kills and restarts it.
func TestSchedulerRealTCP(t *testing.T) {
	listen := func(addr string) net.Listener {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	host := "127.0.0.1"
	if testnet.Inside() {
		rs := testnet.New(t, testnet.Options{}).RealServers[0]
		host = rs.Addr.String()
		listen = func(addr string) net.Listener { return rs.Listen(t, "tcp", addr) }
	}
	l := listen(net.JoinHostPort(host, "0"))
	go serve(l)
	ap := netip.MustParseAddrPort(l.Addr().String())
	t.Logf("real server %v (in a namespace: %t)", ap, testnet.Inside())

	const retry = 2
	block := &config.Checker{
		Pos: config.Pos{File: "it.conf", Line: 1}, Type: config.TCPCheck,
		ConnectIP: ap.Addr(), ConnectPort: ap.Port(), ConnectTimeout: 2 * time.Second,
		Retry: retry, DelayBeforeRetry: 20 * time.Millisecond, DelayLoop: 50 * time.Millisecond,
	}
	v := &config.VirtualServer{Addr: netip.MustParseAddr("198.18.250.1"), Port: 80, Family: "inet", Protocol: config.TCP,
		RealServers: []*config.RealServer{{Addr: ap.Addr(), Port: ap.Port(), Weight: 1, Checkers: []*config.Checker{block}}}}
	log := newAttemptLog(NewChecker)
	s, err := NewScheduler(&config.Config{VirtualServers: []*config.VirtualServer{v}},
		SchedulerOptions{NewChecker: log.newChecker, StartDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// waitAttempts waits until n attempts with result ok have completed.
	waitAttempts := func(ok bool, n int) {
		t.Helper()
		for {
			c := 0
			for _, r := range log.records() {
				if r.ok == ok {
					c++
				}
			}
			if c >= n {
				return
			}
			select {
			case <-log.tick:
			case <-ctx.Done():
				t.Fatalf("waiting for %d attempts ok=%t: %v", n, ok, ctx.Err())
			}
		}
	}
	next := func() Transition {
		t.Helper()
		select {
		case tr := <-s.Transitions():
			return tr
		case <-ctx.Done():
			t.Fatalf("waiting for a transition: %v", ctx.Err())
		}
		return Transition{}
	}

	waitAttempts(true, 3)
	killed := time.Now()
	_ = l.Close() // the real server's process dies: connects are refused

	down := next()
	if down.Up || down.Key.Addr != ap.Addr() || down.Key.Port != ap.Port() {
		t.Fatalf("first transition %+v, want %v down", down, ap)
	}
	// Exactly retry+1 failed attempts, all after the kill, decided it.
	var failed int
	for _, r := range log.records() {
		if r.at.After(killed) && !r.at.After(down.At) {
			if r.ok {
				t.Fatal("a check passed after the listener was closed")
			}
			failed++
		}
	}
	if failed != retry+1 {
		t.Fatalf("down after %d failed attempts, want retry+1 = %d", failed, retry+1)
	}

	l2 := listen(ap.String()) // restarted on the same port
	go serve(l2)
	defer l2.Close()
	up := next()
	if !up.Up || up.Key != down.Key {
		t.Fatalf("second transition %+v, want %v up (exactly one down before it)", up, ap)
	}
	// Stable again: a few more passing rounds bring no transition.
	n := 0
	for _, r := range log.records() {
		if r.ok {
			n++
		}
	}
	waitAttempts(true, n+3)
	select {
	case tr := <-s.Transitions():
		t.Fatalf("unexpected transition %+v while stable", tr)
	default:
	}
	if h := s.Health(); !h[0].Up || !h[0].Checkers[0].Last.OK {
		t.Fatalf("health %+v, want up", h)
	}
}
