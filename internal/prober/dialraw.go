package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// HTTP_GET and SSL_GET connect without net.Dialer. The dialer resolves
// the address string again, starts a goroutine per dial to watch the
// context, and after the connect reads SO_ERROR, getsockname and
// getpeername and sets TCP_NODELAY, all before the check's single write
// and few reads (~18 allocations). Here the endpoint's raw nonblocking
// socket (endpoint.socket: SO_LINGER 0 and the checker's bind and socket
// options, the same as TCP_CHECK's) starts its connect, then joins the
// runtime's netpoller as an *os.File, whose poll descriptor waits for the
// handshake under the same deadline (connect_timeout, for the whole
// check) and cancellation as the reads and writes that follow. The
// connection is fresh for every attempt and resets on close, as before.

// rawConn is a connected TCP socket on the netpoller: a net.Conn for the
// HTTP exchange and crypto/tls.
type rawConn struct {
	f      *os.File
	remote net.Addr
}

// dialRaw connects within ctx (whose deadline bounds the connect and,
// left set on the connection, everything after it). The connection
// resets on Close (SO_LINGER 0). With noDelay the socket sets
// TCP_NODELAY, as net.Dialer does: a TLS handshake writes several records
// and would otherwise wait on Nagle and the server's delayed ACK (40 ms);
// HTTP_GET sends its request in one write and spares the system call.
func (e endpoint) dialRaw(ctx context.Context, noDelay bool) (*rawConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fd, err := e.socket()
	if err != nil {
		return nil, err
	}
	if noDelay {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			_ = rawClose(fd)
			return nil, fmt.Errorf("set TCP_NODELAY: %w", err)
		}
	}
	zone, err := zoneIndex(e.addr.Addr())
	if err != nil {
		_ = rawClose(fd)
		return nil, err
	}
	sa := rawSockaddrOf(e.addr, zone)
	// Connect before the socket joins the netpoller: a socket not yet
	// connecting polls writable (and hung up), which would wake the wait
	// below at once.
	cerr := rawConnect(fd, &sa)
	if cerr != nil && cerr != unix.EINPROGRESS && cerr != unix.EINTR {
		_ = rawClose(fd)
		return nil, cerr
	}
	f := os.NewFile(uintptr(fd), "tcp") // nonblocking: joins the netpoller
	c := &rawConn{f: f, remote: net.TCPAddrFromAddrPort(e.addr)}
	if dl, ok := ctx.Deadline(); ok {
		if err := f.SetDeadline(dl); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("set deadline: %w", err)
		}
	}
	if cerr == nil {
		return c, nil // completed at once (a local peer)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetDeadline(farPast) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("raw conn: %w", err)
	}
	// Each wakeup asks connect again, which says where the handshake is:
	// 0 or EISCONN connected, EALREADY still going (a spurious wakeup),
	// anything else the handshake's error (as SO_ERROR would, which it
	// clears). One system call per wakeup, as SO_ERROR alone would be,
	// without trusting the wakeup.
	werr := rc.Write(func(fd uintptr) bool {
		cerr = rawConnect(int(fd), &sa)
		switch cerr {
		case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
			return false
		case unix.EISCONN:
			cerr = nil
		}
		return true
	})
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = f.Close()
		if errors.Is(werr, os.ErrDeadlineExceeded) && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			werr = ctx.Err()
		}
		return nil, werr
	}
	return c, nil
}

func (c *rawConn) Read(p []byte) (int, error)  { return c.f.Read(p) }
func (c *rawConn) Write(p []byte) (int, error) { return c.f.Write(p) }

// Close resets the connection (SO_LINGER 0) and leaves the netpoller.
func (c *rawConn) Close() error                       { return c.f.Close() }
func (c *rawConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *rawConn) RemoteAddr() net.Addr               { return c.remote }
func (c *rawConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *rawConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *rawConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }
