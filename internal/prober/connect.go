package prober

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TCP_CHECK's connect path. A check only needs to know whether the
// handshake completes, so it does not go through net.Dialer (a netFD, a
// runtime poll descriptor registered and removed per connection, a
// goroutine watching the context, getsockname/getpeername and
// TCP_NODELAY calls, ~37 allocations). Instead each check makes a raw
// nonblocking socket, connects it and hands it to one shared epoll
// instance, the connector, whose file descriptor is itself registered with
// Go's netpoller: one goroutine, woken by the runtime when any connect
// finishes, drains the ready sockets in batches and wakes the checks
// waiting on them. Per check that is socket, setsockopt(SO_LINGER),
// connect, epoll_ctl, getsockopt(SO_ERROR) and close, with the epoll_wait
// shared by every connect that finishes at about the same time; closing
// the socket removes it from the epoll set.

// connectBatch is how many ready sockets the connector takes per epoll_wait.
const connectBatch = 256

// connector is the shared epoll instance of every TCP_CHECK connect.
type connector struct {
	once sync.Once
	err  error // why the connector could not start
	epfd int

	mu      sync.Mutex
	waiting map[uint64]*connectWait // by epoll token
	next    uint64
}

// connectWait is one connect in progress: its socket and where the
// connector delivers the outcome (nil: connected).
type connectWait struct {
	fd    int
	done  chan error // capacity 1
	timer *time.Timer
}

// connectWaits recycles the waits, with their channel and timer.
var connectWaits = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &connectWait{done: make(chan error, 1), timer: t}
}}

// tcpConnector serves every TCP_CHECK of the process.
var tcpConnector connector

// start makes the epoll instance and its goroutine, once.
func (c *connector) start() error {
	c.once.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			c.err = fmt.Errorf("epoll_create1: %w", err)
			return
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			_ = unix.Close(fd)
			c.err = fmt.Errorf("epoll fd nonblocking: %w", err)
			return
		}
		// A nonblocking descriptor given to os.NewFile joins the runtime's
		// netpoller: the epoll set's readiness wakes the goroutine below.
		f := os.NewFile(uintptr(fd), "tcp-check-epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			_ = f.Close()
			c.err = fmt.Errorf("epoll fd raw conn: %w", err)
			return
		}
		c.epfd = fd
		c.waiting = make(map[uint64]*connectWait)
		go c.loop(f, rc)
	})
	return c.err
}

// loop waits (through the netpoller) for the epoll set to have ready
// sockets and finishes their connects, for the life of the process.
func (c *connector) loop(f *os.File, rc syscall.RawConn) {
	defer func() { _ = f.Close() }() // only when the netpoller fails, which leaves connects to time out
	events := make([]unix.EpollEvent, connectBatch)
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return true
			}
			for i := range n {
				c.finish(uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32)
			}
			if n < len(events) {
				return false // drained: wait for the next wakeup
			}
		}
	})
}

// finish delivers the outcome of the connect with the given token, unless
// its check gave up first.
func (c *connector) finish(token uint64) {
	c.mu.Lock()
	w := c.waiting[token]
	delete(c.waiting, token)
	c.mu.Unlock()
	if w == nil {
		return
	}
	// The check closes the socket only after receiving this (or after
	// taking the token back itself), so fd is still this socket.
	soerr, err := unix.GetsockoptInt(w.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soerr != 0 {
		err = syscall.Errno(soerr)
	}
	w.done <- err
}

// connectReset connects to the endpoint within its connect_timeout (and
// ctx) and resets the connection: the whole of a TCP_CHECK. The socket has
// SO_LINGER 0 from the start, so its close sends a RST whether the
// handshake completed or not: no TIME_WAIT on the director, and a close
// never blocks (keepalived #2271).
func (e endpoint) connectReset(ctx context.Context) error {
	if err := tcpConnector.start(); err != nil {
		return err
	}
	fd, err := e.socket()
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	sa, err := sockaddr(e.addr)
	if err != nil {
		return err
	}
	switch err := unix.Connect(fd, sa); err {
	case nil:
		return nil // completed at once (a local peer)
	case unix.EINPROGRESS, unix.EINTR:
	default:
		return fmt.Errorf("connect %v: %w", e.addr, err)
	}
	return tcpConnector.wait(ctx, fd, e.timeout, e.addr)
}

// wait registers the connecting socket fd and waits until it connects or
// fails, timeout passes or ctx is done.
func (c *connector) wait(ctx context.Context, fd int, timeout time.Duration, addr netip.AddrPort) error {
	w := connectWaits.Get().(*connectWait)
	w.fd = fd
	c.mu.Lock()
	c.next++
	token := c.next
	c.waiting[token] = w
	c.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
	if err := unix.EpollCtl(c.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		c.takeBack(token) // never in the set: the connector cannot have it
		connectWaits.Put(w)
		return fmt.Errorf("connect %v: epoll_ctl: %w", addr, err)
	}
	w.timer.Reset(timeout)
	var err error
	select {
	case err = <-w.done:
		w.timer.Stop()
		if err != nil {
			err = fmt.Errorf("connect %v: %w", addr, err)
		}
		connectWaits.Put(w)
		return err
	case <-w.timer.C:
		err = fmt.Errorf("connect %v: %w", addr, os.ErrDeadlineExceeded)
	case <-ctx.Done():
		w.timer.Stop()
		err = fmt.Errorf("connect %v: %w", addr, ctx.Err())
	}
	if !c.takeBack(token) {
		// The connector took it first and is reading SO_ERROR: wait for
		// it to let go of the socket before the caller closes it.
		if e := <-w.done; e == nil {
			err = nil // connected just in time
		}
	}
	connectWaits.Put(w)
	return err
}

// takeBack removes token from the waiting set; false when the connector
// already took it.
func (c *connector) takeBack(token uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.waiting[token]; !ok {
		return false
	}
	delete(c.waiting, token)
	return true
}

// socket makes the nonblocking TCP socket of a check with the endpoint's
// options: SO_LINGER 0, SO_MARK (fwmark), SO_BINDTODEVICE (bind_if), and
// bound to bindto/bind_port (with SO_REUSEADDR for a fixed port).
func (e endpoint) socket() (int, error) {
	family := unix.AF_INET
	if !e.addr.Addr().Unmap().Is4() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := e.setup(fd); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// setup applies the endpoint's options to a fresh socket.
func (e endpoint) setup(fd int) error {
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return fmt.Errorf("set SO_LINGER: %w", err)
	}
	if e.fwmark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(e.fwmark)); err != nil {
			return fmt.Errorf("set SO_MARK %d: %w", e.fwmark, err)
		}
	}
	if e.bindIf != "" {
		if err := unix.BindToDevice(fd, e.bindIf); err != nil {
			return fmt.Errorf("bind to device %s: %w", e.bindIf, err)
		}
	}
	if !e.bind.IsValid() && e.port == 0 {
		return nil
	}
	if e.port != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("set SO_REUSEADDR: %w", err)
		}
	}
	local := e.bind
	if !local.IsValid() {
		local = netip.IPv4Unspecified()
		if !e.addr.Addr().Unmap().Is4() {
			local = netip.IPv6Unspecified()
		}
	}
	la := netip.AddrPortFrom(local, e.port)
	sa, err := sockaddr(la)
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %v: %w", la, err)
	}
	return nil
}

// sockaddr converts ap to the kernel's form (an IPv6 zone names an
// interface).
func sockaddr(ap netip.AddrPort) (unix.Sockaddr, error) {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return nil, fmt.Errorf("zone of %v: %w", a, err)
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	return sa, nil
}
