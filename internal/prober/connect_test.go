package prober

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"golang.org/x/sys/unix"
)

// sockets returns the sockets this process holds ("socket:[INODE]").
func sockets(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			m[l] = true
		}
	}
	return m
}

// checkNoNewSockets fails when the process holds a socket that was not in
// before, other than the idle ones the connector keeps for reuse (at most
// connectPoolMax).
func checkNoNewSockets(t *testing.T, before map[string]bool) {
	t.Helper()
	idle := map[string]bool{}
	tcpConnector.pmu.Lock()
	for _, fds := range tcpConnector.idle {
		for _, fd := range fds {
			l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
			if err != nil {
				t.Errorf("idle socket %d: %v", fd, err)
			}
			idle[l] = true
		}
	}
	n := tcpConnector.nIdle
	tcpConnector.pmu.Unlock()
	if len(idle) != n || n > connectPoolMax {
		t.Errorf("%d idle sockets listed, %d counted (at most %d)", len(idle), n, connectPoolMax)
	}
	for s := range sockets(t) {
		if !before[s] && !idle[s] {
			t.Errorf("%s left open by the checks", s)
		}
	}
}

// waitingConnects is how many connects the shared connector holds.
func waitingConnects() int {
	tcpConnector.mu.Lock()
	defer tcpConnector.mu.Unlock()
	return len(tcpConnector.waiting)
}

// connectLab is a real server behind a veth with threaded NAPI, so that
// connects really are asynchronous (EINPROGRESS, then the connector), as
// they are on a director; over loopback or a plain veth the handshake
// completes inside connect(). stop closes the listener and waits until
// every connection it accepted is closed.
func connectLab(t *testing.T) (rs *testnet.RealServer, open, closed netip.AddrPort, stop func()) {
	t.Helper()
	rs = testnet.New(t, testnet.Options{}).RealServers[0]
	open, closed, stop = threadedPorts(t, rs)
	return rs, open, closed, stop
}

// threadedPorts gives rs threaded NAPI (see connectLab) and a listener
// that accepts and closes every connection: open is its address, closed
// a port next to it with nothing listening. stop closes the listener and
// waits until every connection it accepted is closed.
func threadedPorts(t *testing.T, rs *testnet.RealServer) (open, closed netip.AddrPort, stop func()) {
	t.Helper()
	rs.ThreadedNAPI(t)
	l := rs.Listen(t, "tcp", netip.AddrPortFrom(rs.Addr, 0).String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	stop = func() { _ = l.Close(); <-done }
	open = netip.MustParseAddrPort(l.Addr().String())
	closed = netip.AddrPortFrom(rs.Addr, open.Port()+1)
	if closed.Port() == 0 {
		closed = netip.AddrPortFrom(rs.Addr, 1)
	}
	return open, closed, stop
}

// TestConnectorConcurrent runs 600 TCP_CHECKs at once through the shared
// connector, a third of them to a closed port: each gets its own answer,
// and no socket or waiting entry is left behind.
func TestConnectorConcurrent(t *testing.T) {
	_, open, closed, stop := connectLab(t)
	okCk := mustChecker(t, checkerFor(config.TCPCheck, open, 5*time.Second), CheckerOptions{})
	refusedCk := mustChecker(t, checkerFor(config.TCPCheck, closed, 5*time.Second), CheckerOptions{})
	if res := okCk.Check(t.Context()); !res.OK { // the connector and neighbour entry exist from here
		t.Fatal(res.Message)
	}
	before := sockets(t)

	const n = 600
	results := make([]Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ck := okCk
			if i%3 == 0 {
				ck = refusedCk
			}
			results[i] = ck.Check(t.Context())
		})
	}
	wg.Wait()
	for i, res := range results {
		if i%3 == 0 {
			if res.OK || !errors.Is(res.Err, syscall.ECONNREFUSED) {
				t.Fatalf("check %d to the closed port: OK=%v %q, want ECONNREFUSED", i, res.OK, res.Message)
			}
			continue
		}
		if !res.OK {
			t.Fatalf("check %d: %s", i, res.Message)
		}
	}
	if w := waitingConnects(); w != 0 {
		t.Errorf("%d connects still waiting", w)
	}
	stop()
	checkNoNewSockets(t, before)
}

// TestConnectorGivesUp covers both ends of a connect to a black hole: its
// connect_timeout passing, and the caller's context ending first. Either
// way the socket is closed and the connector forgets it.
func TestConnectorGivesUp(t *testing.T) {
	rs, open, _, stop := connectLab(t)
	if res := mustChecker(t, checkerFor(config.TCPCheck, open, 5*time.Second), CheckerOptions{}).Check(t.Context()); !res.OK {
		t.Fatal(res.Message)
	}
	before := sockets(t)
	rs.BlackHole(t)

	res := mustChecker(t, checkerFor(config.TCPCheck, open, 200*time.Millisecond), CheckerOptions{}).Check(t.Context())
	if res.OK || !errors.Is(res.Err, os.ErrDeadlineExceeded) {
		t.Fatalf("connect_timeout: OK=%v %q (%v), want a deadline error", res.OK, res.Message, res.Err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan Result, 1)
	go func() {
		done <- mustChecker(t, checkerFor(config.TCPCheck, open, time.Minute), CheckerOptions{}).Check(ctx)
	}()
	cancel()
	if res := <-done; res.OK || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("cancelled: OK=%v %q (%v), want context.Canceled", res.OK, res.Message, res.Err)
	}
	if w := waitingConnects(); w != 0 {
		t.Errorf("%d connects still waiting", w)
	}
	stop()
	checkNoNewSockets(t, before)
}

// TestSockaddr converts addresses of both families to the kernel's form.
func TestSockaddr(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"198.18.1.2:80", "4 198.18.1.2 80"},
		{"[::ffff:198.18.1.2]:80", "4 198.18.1.2 80"},
		{"[2001:db8::1]:443", "6 2001:db8::1 443"},
		{"[fe80::1%lo]:22", "6 fe80::1 22 zone"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			sa, err := sockaddr(netip.MustParseAddrPort(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var got string
			switch sa := sa.(type) {
			default:
				t.Fatalf("%T", sa)
			case *unix.SockaddrInet4:
				got = "4 " + netip.AddrFrom4(sa.Addr).String() + " " + strconv.Itoa(sa.Port)
			case *unix.SockaddrInet6:
				got = "6 " + netip.AddrFrom16(sa.Addr).String() + " " + strconv.Itoa(sa.Port)
				if sa.ZoneId != 0 {
					got += " zone"
				}
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := sockaddr(netip.MustParseAddrPort("[fe80::1%nosuchlink0]:22")); err == nil {
		t.Fatal("unknown zone accepted")
	}
}

// TestConnectorReuse runs checks one after another, so that each reuses
// the socket of the one before: results stay right (open, refused, black
// hole), the real server sees every connection end with a RST (no
// TIME_WAIT on the director), and no socket is made after the first.
func TestConnectorReuse(t *testing.T) {
	rs, _, closed, stop := connectLab(t)
	l := rs.Listen(t, "tcp", netip.AddrPortFrom(rs.Addr, 0).String())
	ends := make(chan error, 64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, err = c.Read(make([]byte, 1)) // the director sends nothing: this waits for its RST or FIN
			_ = c.Close()
			ends <- err
		}
	}()
	open := netip.MustParseAddrPort(l.Addr().String())
	okCk := mustChecker(t, checkerFor(config.TCPCheck, open, 5*time.Second), CheckerOptions{})
	refusedCk := mustChecker(t, checkerFor(config.TCPCheck, closed, 5*time.Second), CheckerOptions{})
	holeCk := mustChecker(t, checkerFor(config.TCPCheck, netip.AddrPortFrom(rs.Addr, open.Port()), 100*time.Millisecond), CheckerOptions{})
	if res := okCk.Check(t.Context()); !res.OK {
		t.Fatal(res.Message)
	}
	<-ends
	before := sockets(t) // the pooled socket of the first check among them

	for i := range 20 {
		if res := okCk.Check(t.Context()); !res.OK {
			t.Fatalf("round %d: %s", i, res.Message)
		}
		if err := <-ends; !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("round %d: the real server's read ended with %v, want ECONNRESET (a RST)", i, err)
		}
		if res := refusedCk.Check(t.Context()); res.OK || !errors.Is(res.Err, syscall.ECONNREFUSED) {
			t.Fatalf("round %d: closed port: OK=%v %q", i, res.OK, res.Message)
		}
		if i%5 == 4 { // a handshake cut short, then the socket reused
			rs.BlackHole(t)
			if res := holeCk.Check(t.Context()); res.OK || !errors.Is(res.Err, os.ErrDeadlineExceeded) {
				t.Fatalf("round %d: black hole: OK=%v %q", i, res.OK, res.Message)
			}
			rs.Restore(t)
		}
	}
	stop()
	checkNoNewSockets(t, before)
	for s := range sockets(t) {
		if !before[s] {
			t.Errorf("%s: a new socket, though one was idle", s)
		}
	}
}

// TestConnectorReuseBound reuses sockets bound to bindto (no bind_port)
// and marked (fwmark): the address stays, a new source port comes with
// each connect, and a reused socket is never handed to a check with other
// options.
func TestConnectorReuseBound(t *testing.T) {
	rs, _, _, stop := connectLab(t)
	l := rs.Listen(t, "tcp", netip.AddrPortFrom(rs.Addr, 0).String())
	peers := make(chan netip.AddrPort, 64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			peers <- netip.MustParseAddrPort(c.RemoteAddr().String())
			_ = c.Close()
		}
	}()
	open := netip.MustParseAddrPort(l.Addr().String())
	bound := checkerFor(config.TCPCheck, open, 5*time.Second)
	bound.BindTo, bound.FWMark = rs.Director, 7
	boundCk := mustChecker(t, bound, CheckerOptions{})
	plainCk := mustChecker(t, checkerFor(config.TCPCheck, open, 5*time.Second), CheckerOptions{})
	if boundCk.(*tcpChecker).ep.poolKey() == plainCk.(*tcpChecker).ep.poolKey() {
		t.Fatal("bound and plain checks share a pool")
	}
	ports := map[uint16]bool{}
	for i := range 10 {
		if res := boundCk.Check(t.Context()); !res.OK {
			t.Fatalf("round %d: %s", i, res.Message)
		}
		p := <-peers
		if p.Addr() != rs.Director {
			t.Fatalf("round %d: the server saw %v, want bindto %v", i, p, rs.Director)
		}
		ports[p.Port()] = true
		if res := plainCk.Check(t.Context()); !res.OK {
			t.Fatalf("round %d, plain: %s", i, res.Message)
		}
		<-peers
	}
	if len(ports) < 2 {
		t.Errorf("source ports %v: the reused socket kept its port", ports)
	}
	stop()
}
