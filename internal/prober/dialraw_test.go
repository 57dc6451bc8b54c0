package prober

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialRaw: HTTP_GET's and SSL_GET's connect (dialRaw) gives a socket
// that resets on close (SO_LINGER 0) and sets TCP_NODELAY only when asked
// (SSL_GET), and fails a refused or cancelled connect with its cause.
func TestDialRaw(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	open := l.Addr().(*net.TCPAddr).AddrPort()
	closed := netip.AddrPortFrom(open.Addr(), 1) // nothing listens on port 1 in the test namespace
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name    string
		addr    netip.AddrPort
		ctx     context.Context
		noDelay bool
		wantErr error
	}{
		{"http", open, context.Background(), false, nil},
		{"ssl", open, context.Background(), true, nil},
		{"refused", closed, context.Background(), false, syscall.ECONNREFUSED},
		{"cancelled", open, cancelled, false, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := endpoint{addr: tc.addr, timeout: time.Second, epOpts: &noOpts}
			ctx, cancel := ep.withTimeout(tc.ctx)
			defer cancel()
			c, err := ep.dialRaw(ctx, tc.noDelay)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("dialRaw: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rc, err := c.f.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var linger *unix.Linger
			var nodelay int
			var lerr, nerr error
			if err := rc.Control(func(fd uintptr) {
				linger, lerr = unix.GetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER)
				nodelay, nerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY)
			}); err != nil || lerr != nil || nerr != nil {
				t.Fatal(err, lerr, nerr)
			}
			if linger.Onoff == 0 || linger.Linger != 0 {
				t.Errorf("SO_LINGER %+v, want on with 0", *linger)
			}
			if (nodelay != 0) != tc.noDelay {
				t.Errorf("TCP_NODELAY %d, want %t", nodelay, tc.noDelay)
			}
			if c.RemoteAddr().(*net.TCPAddr).AddrPort() != tc.addr {
				t.Errorf("RemoteAddr %v, want %v", c.RemoteAddr(), tc.addr)
			}
		})
	}
}
