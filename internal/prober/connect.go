package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TCP_CHECK's connect path. A check only needs to know whether the
// handshake completes, so it does not go through net.Dialer (a netFD, a
// runtime poll descriptor registered and removed per connection, a
// goroutine watching the context, getsockname/getpeername and
// TCP_NODELAY calls, ~33 allocations). Instead each check connects a raw
// nonblocking socket and hands it to one shared epoll instance, the
// connector, whose own file descriptor is registered with Go's
// netpoller: one goroutine, woken by the runtime when any connect
// finishes, drains the ready sockets in batches and wakes the checks
// waiting on them.
//
// Sockets are reused: instead of close, a connect to AF_UNSPEC
// (tcp_disconnect) sends the RST of an established connection (or drops
// a handshake still in progress) and returns the socket to the closed
// state with its options, its local port released and its place in the
// epoll set kept; the next check with the same socket options takes it
// from the connector's pool. Per check that leaves connect,
// epoll_ctl(MOD), getsockopt(SO_ERROR), connect(AF_UNSPEC) and
// getsockopt(SO_ERROR) (tcp_disconnect leaves ECONNRESET pending), and
// saves the socket's creation and destruction (file, inode, dentry,
// epoll item). Sockets with a fixed bind_port are never reused; the pool
// keeps at most connectPoolMax idle sockets and closes the rest
// (SO_LINGER 0 is set from the start, so a close resets too).
//
// The scheduler's attempts do not wait at all: the connect is started by
// the dispatcher and finished by the connector's loop, which also fails
// it at its connect_timeout (connect_async.go). Check waits as below.
//
// These system calls cannot block (nonblocking sockets; a RST, never a
// lingering close), so they are made as raw system calls: the goroutine
// keeps its P, and the runtime's sysmon thread is not kept busy taking Ps
// back from threads "in a system call".

// Connector tuning.
const (
	connectBatch   = 256  // ready sockets taken per epoll_wait
	connectPoolMax = 1024 // idle sockets kept for reuse, all options together
)

// connector is the shared epoll instance of every TCP_CHECK connect.
type connector struct {
	once sync.Once
	err  error // why the connector could not start
	epfd int
	live atomic.Bool // the epoll instance is made: pollReady may read it

	mu      sync.Mutex
	waiting map[uint64]*connectWait // by epoll token
	next    uint64

	file    *os.File       // the epoll descriptor in the netpoller; its read deadline is timers' earliest
	timers  deadlineHeap   // asynchronous attempts by connect_timeout deadline (connect_async.go)
	armed   time.Time      // the read deadline set on file: zero for none
	expired []*connectWait // the loop's scratch for expire
	stopped error          // set if the loop ends (it should not): asynchronous attempts then fail at once with it

	pmu   sync.Mutex        // guards the pool, apart from mu: a thousand checks ending at once contend for both
	idle  map[poolKey][]int // reusable sockets, in the epoll set, disarmed or armed for a stale token
	nIdle int
}

// poolKey groups the sockets that can stand in for each other: same family
// and options. A socket with reuse false is closed after its check.
type poolKey struct {
	reuse  bool
	family int
	mark   uint32
	dev    string
	bind   netip.Addr
}

// connectWait is one connect in progress: its socket and where the
// connector delivers the outcome (nil: connected).
type connectWait struct {
	fd    int
	done  chan error // capacity 1
	timer *time.Timer

	// An asynchronous attempt (group set) has no waiter: the connector
	// finishes it (connect_async.go).
	group    *asyncGroup
	ref      attemptRef
	chk      *tcpChecker
	pool     poolKey
	deadline time.Time
	token    uint64
	hidx     int // place in the deadline heap
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
		c.file = f
		c.waiting = make(map[uint64]*connectWait)
		c.idle = make(map[poolKey][]int)
		c.live.Store(true)
		go c.loop(f, rc)
	})
	return c.err
}

// loop waits (through the netpoller) for the epoll set to have ready
// sockets and finishes their connects, for the life of the process. The
// epoll descriptor's read deadline is the earliest deadline of the
// asynchronous attempts: when it passes, the loop fails those due.
func (c *connector) loop(f *os.File, rc syscall.RawConn) {
	defer func() {
		// Only when the netpoller or epoll_wait fails. The goroutine
		// path's waits then time out; the asynchronous attempts, which
		// have no timer of their own, fail now and from now on, so a
		// dead loop shows as failing checks, never as stale health.
		c.stopAsync(errConnectorStopped)
		_ = f.Close()
	}()
	events := make([]unix.EpollEvent, connectBatch)
	drain := func(fd uintptr) bool {
		for {
			r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, fd, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				return true
			}
			n := int(r)
			c.deliver(events[:n], loopYield)
			if n < len(events) {
				return false // drained: wait for the next wakeup
			}
		}
	}
	for {
		if err := rc.Read(drain); !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		// The netpoller reports a passed deadline before it looks for
		// readiness: take the events already there first, so a connect
		// that completed while the loop waited for a CPU is not failed
		// for the loop's lateness.
		if drain(uintptr(c.epfd)) {
			return
		}
		c.expire()
	}
}

// finish delivers the outcome of the connect with the given token, unless
// its check gave up first (or the event is a stale one of a reused socket).
// events are what epoll reported: a connecting socket is reported only
// once it has left SYN_SENT, so writable with neither EPOLLERR nor EPOLLHUP
// is connected, and its SO_ERROR (zero) is not read.
func (c *connector) finish(token uint64, events uint32) {
	c.mu.Lock()
	w := c.waiting[token]
	delete(c.waiting, token)
	if w != nil && w.group != nil {
		c.timers.remove(w)
	}
	c.mu.Unlock()
	if w == nil {
		return
	}
	if w.group != nil { // asynchronous: finished here
		var err error
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			err = soError(w.fd)
		}
		c.completeAsync(w, err)
		return
	}
	// The check releases the socket only after receiving this (or after
	// taking the token back itself), so fd is still this socket.
	if events&(unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		w.done <- nil
		return
	}
	w.done <- soError(w.fd)
}

// connectReset connects to the endpoint (sa: its address in the kernel's
// layout) within its connect_timeout (and ctx) and resets the connection:
// the whole of a TCP_CHECK.
func (t *tcpChecker) connectReset(ctx context.Context, sa *rawSockaddr) error {
	c := &tcpConnector
	if err := c.start(); err != nil {
		return err
	}
	pool := t.ep.poolKey() // a few field copies: cheaper to make than to keep for 10,000 checkers
	fd, inSet := c.get(pool)
	if fd < 0 {
		var err error
		if fd, err = t.ep.socket(); err != nil {
			return err
		}
	}
	err := rawConnect(fd, sa)
	switch err {
	case nil: // completed at once (a local peer)
	case unix.EINPROGRESS, unix.EINTR:
		err = c.wait(ctx, fd, &inSet, t.ep.timeout)
	}
	if err != nil {
		err = fmt.Errorf("connect %v: %w", t.ep.addr, err)
	}
	c.put(pool, fd, inSet)
	return err
}

// get takes an idle socket for key from the pool: -1 when there is none.
// inSet says the socket is in the epoll set already.
func (c *connector) get(key poolKey) (fd int, inSet bool) {
	if !key.reuse {
		return -1, false
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	fds := c.idle[key]
	if len(fds) == 0 {
		return -1, false
	}
	fd = fds[len(fds)-1]
	c.idle[key] = fds[:len(fds)-1]
	c.nIdle--
	return fd, true
}

// put resets the socket of a finished check and keeps it for reuse, or
// closes it.
func (c *connector) put(key poolKey, fd int, inSet bool) {
	if !key.reuse || !inSet {
		_ = rawClose(fd) // a socket that never waited is cheap to make again
		return
	}
	unspec := rawSockaddr{len: unix.SizeofSockaddrInet4}
	if rawConnect(fd, &unspec) != nil {
		_ = rawClose(fd)
		return
	}
	// tcp_disconnect leaves ECONNRESET as the socket's pending error; the
	// next connect clears it (tcp_connect_init), so it is not read here:
	// one system call fewer per check (TestConnectorReuse would see a
	// stale ECONNRESET on the reused socket).
	c.pmu.Lock()
	if c.nIdle < connectPoolMax {
		c.idle[key] = append(c.idle[key], fd)
		c.nIdle++
		fd = -1
	}
	c.pmu.Unlock()
	if fd >= 0 {
		_ = rawClose(fd)
	}
}

// wait arms the connecting socket fd in the epoll set (adding it unless
// *inSet, which it then sets) and waits until it connects or fails,
// timeout passes or ctx is done.
func (c *connector) wait(ctx context.Context, fd int, inSet *bool, timeout time.Duration) error {
	w := connectWaits.Get().(*connectWait)
	defer connectWaits.Put(w)
	w.fd = fd
	c.mu.Lock()
	c.next++
	token := c.next
	c.waiting[token] = w
	c.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
	op := unix.EPOLL_CTL_ADD
	if *inSet {
		op = unix.EPOLL_CTL_MOD
	}
	if _, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(c.epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0); errno != 0 {
		c.takeBack(token) // not armed: the connector cannot have it
		return fmt.Errorf("epoll_ctl: %w", errno)
	}
	*inSet = true
	w.timer.Reset(timeout)
	var err error
	select {
	case err = <-w.done:
		w.timer.Stop()
		return err
	case <-w.timer.C:
		err = os.ErrDeadlineExceeded
	case <-ctx.Done():
		w.timer.Stop()
		err = ctx.Err()
	}
	if !c.takeBack(token) {
		// The connector took it first and is reading SO_ERROR: wait for
		// it to let go of the socket before the caller reuses or closes it.
		if e := <-w.done; e == nil {
			err = nil // connected just in time
		}
	}
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

// rawSockaddr is a socket address in the kernel's layout.
type rawSockaddr struct {
	buf [unix.SizeofSockaddrInet6]byte
	len uint32
}

// rawConnect is connect(2) as a raw system call (it never blocks on a
// nonblocking socket).
func rawConnect(fd int, sa *rawSockaddr) error {
	_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.buf[0])), uintptr(sa.len))
	if errno != 0 {
		return errno
	}
	return nil
}

// rawClose is close(2) as a raw system call (SO_LINGER 0: it never blocks).
func rawClose(fd int) error {
	if _, _, errno := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// soError reads (and clears) the socket's pending error: nil when none.
func soError(fd int) error {
	var v int32
	l := uint32(4)
	_, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR, uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0)
	switch {
	case errno != 0:
		return errno
	case v != 0:
		return syscall.Errno(v)
	}
	return nil
}

// rawSockaddrOf converts ap to the kernel's layout, its IPv6 zone (if
// any) being the interface index zone. It allocates nothing: TCP_CHECK
// builds it on the stack for every connect rather than keep 32 bytes per
// checker.
func rawSockaddrOf(ap netip.AddrPort, zone uint32) rawSockaddr {
	var r rawSockaddr
	a, port := ap.Addr(), ap.Port()
	if a.Is4() || a.Is4In6() {
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.buf[0]))
		p.Family = unix.AF_INET
		pb := (*[2]byte)(unsafe.Pointer(&p.Port))
		pb[0], pb[1] = byte(port>>8), byte(port)
		p.Addr = a.Unmap().As4()
		r.len = unix.SizeofSockaddrInet4
		return r
	}
	p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.buf[0]))
	p.Family = unix.AF_INET6
	pb := (*[2]byte)(unsafe.Pointer(&p.Port))
	pb[0], pb[1] = byte(port>>8), byte(port)
	p.Addr = a.As16()
	p.Scope_id = zone
	r.len = unix.SizeofSockaddrInet6
	return r
}

// zoneIndex is the interface index a's IPv6 zone names: 0 without a zone.
func zoneIndex(a netip.Addr) (uint32, error) {
	z := a.Zone()
	if z == "" || a.Is4() || a.Is4In6() {
		return 0, nil
	}
	ifi, err := net.InterfaceByName(z)
	if err != nil {
		return 0, fmt.Errorf("zone of %v: %w", a, err)
	}
	return uint32(ifi.Index), nil
}

// poolKey returns the reuse group of the endpoint's sockets.
func (e endpoint) poolKey() poolKey {
	k := poolKey{reuse: e.port == 0, family: unix.AF_INET, mark: e.fwmark, dev: e.bindIf, bind: e.bind}
	if !e.addr.Addr().Unmap().Is4() {
		k.family = unix.AF_INET6
	}
	return k
}

// socket makes the nonblocking TCP socket of a check with the endpoint's
// options: SO_LINGER 0, SO_MARK (fwmark), SO_BINDTODEVICE (bind_if), and
// bound to bindto/bind_port (with SO_REUSEADDR for a fixed port).
func (e endpoint) socket() (int, error) {
	fd, err := unix.Socket(e.poolKey().family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
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
	zone, err := zoneIndex(a)
	if err != nil {
		return nil, err
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16(), ZoneId: zone}, nil
}
