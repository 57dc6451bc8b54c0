package testnet

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestResponder checks the benchmark responder against the real stack: a
// connect to a port in its ranges completes with nothing listening there,
// the ACK and RST that follow never reach the real server's stack, and a
// SYN to a port outside the ranges reaches the stack, both where a real
// server listens and where nothing does.
func TestResponder(t *testing.T) {
	n := New(t, Options{RealServers: 1, ExtraAddrs: 1})
	rs := n.RealServers[0]
	l := rs.Listen(t, "tcp", ":7000")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("real\n"))
			_ = c.Close()
		}
	}()
	resp := rs.StartResponder(t,
		ResponderRange{Addr: rs.Addr, First: 20000, Last: 20099},
		ResponderRange{Addr: rs.Addrs[1], First: 7000, Last: 7000})
	resetsBefore := tcpResets(t, rs)

	dial := func(a netip.Addr, port uint16) (net.Conn, error) {
		return net.DialTimeout("tcp", netip.AddrPortFrom(a, port).String(), 2*time.Second)
	}
	tests := []struct {
		name    string
		addr    netip.Addr
		port    uint16
		want    string // "answered", "real", "refused"
		synacks uint64
	}{
		{"first port of a range", rs.Addr, 20000, "answered", 1},
		{"last port of a range", rs.Addr, 20099, "answered", 1},
		{"second range, a port a real server listens on", rs.Addrs[1], 7000, "answered", 1},
		{"real server outside the ranges", rs.Addr, 7000, "real", 0},
		{"closed port just past a range", rs.Addr, 20100, "refused", 0},
		{"closed port just below a range", rs.Addr, 19999, "refused", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := resp.Stats()
			if err != nil {
				t.Fatal(err)
			}
			c, err := dial(tc.addr, tc.port)
			switch tc.want {
			case "answered":
				if err != nil {
					t.Fatalf("connect to %v:%d: %v, want the responder's SYN-ACK", tc.addr, tc.port, err)
				}
				// An abortive close: the RST goes to the responder, which drops it.
				_ = c.(*net.TCPConn).SetLinger(0)
				_ = c.Close()
			case "real":
				if err != nil {
					t.Fatalf("connect to %v:%d: %v", tc.addr, tc.port, err)
				}
				line, err := bufio.NewReader(c).ReadString('\n')
				_ = c.Close()
				if err != nil || strings.TrimSpace(line) != "real" {
					t.Fatalf("read %q, %v; want the real server's greeting", line, err)
				}
			case "refused":
				if !errors.Is(err, syscall.ECONNREFUSED) {
					if c != nil {
						_ = c.Close()
					}
					t.Fatalf("connect to %v:%d: %v, want ECONNREFUSED from the real stack", tc.addr, tc.port, err)
				}
			}
			after, err := resp.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if got := after.SynAcks - before.SynAcks; got != tc.synacks {
				t.Errorf("responder SYN-ACKs %d, want %d", got, tc.synacks)
			}
			if tc.synacks > 0 {
				// The handshake's ACK and the RST, dropped (the RST is sent by close before it returns).
				if got := after.Dropped - before.Dropped; got < 2 {
					t.Errorf("responder dropped %d segments, want the ACK and the RST (2)", got)
				}
			}
		})
	}
	// The real stack saw none of the responder's connections: it sent no
	// RST but the two refusals' (a SYN-ACK or ACK reaching it with no
	// socket would draw one).
	if got := tcpResets(t, rs) - resetsBefore; got != 2 {
		t.Errorf("real server sent %d RSTs, want 2 (the two refused connects)", got)
	}
}

// tcpResets reads the real server's Tcp OutRsts counter.
func tcpResets(t *testing.T, rs *RealServer) uint64 {
	t.Helper()
	out := rs.Run(t, "nstat", "-az", "TcpOutRsts")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "TcpOutRsts" {
			var v uint64
			for _, ch := range f[1] {
				v = v*10 + uint64(ch-'0')
			}
			return v
		}
	}
	t.Fatalf("no TcpOutRsts in %q", out)
	return 0
}
