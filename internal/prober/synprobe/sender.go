package synprobe

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// probe is one SYN to send.
type probe struct {
	local, remote netip.Addr
	lport, rport  uint16
	seq           uint32
	t             *target // the target it probes (nil in benchmarks)
	gen           uint32  // its number among t's probes
	f             *frame  // its prebuilt frame: sent on the packet socket; nil: on the raw socket
}

// sender owns the raw sockets and the packet socket and reuses one set
// of sendmmsg buffers. It is not safe for concurrent use.
type sender struct {
	fd4, fd6 int // raw sockets, -1 until opened
	fdp      int // packet socket, -1 until opened
	msgs     []unix.Mmsghdr
	iovs     []unix.Iovec
	bufs     []byte
	sa4      []unix.RawSockaddrInet4
	sa6      []unix.RawSockaddrInet6
	sll      []unix.RawSockaddrLinklayer

	// TX rings by interface (nil: none could be opened there) unless
	// noRings; the first error opening one; the probes of a batch that
	// go through sendmmsg instead; the rings a batch filled.
	rings   map[int]*txRing
	noRings bool
	ringErr error
	rest    []probe
	touched []*txRing
	dropped int // frames the rings gave up since takeDropped
}

// dropAll is a classic BPF filter that accepts nothing.
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

func newSender(batch int) *sender {
	return &sender{
		fd4: -1, fd6: -1, fdp: -1,
		msgs: make([]unix.Mmsghdr, batch),
		iovs: make([]unix.Iovec, batch),
		bufs: make([]byte, batch*maxFrameLen),
		sll:  make([]unix.RawSockaddrLinklayer, batch),
		sa4:  make([]unix.RawSockaddrInet4, batch),
		sa6:  make([]unix.RawSockaddrInet6, batch),
	}
}

// openRaw opens a send-only raw TCP socket of the family, with a filter
// that drops the copy of every incoming TCP packet the kernel would queue
// on it. The kernel builds the IP header: IP_HDRINCL (or IPPROTO_RAW)
// would save that, but makes the kernel skip its route cache and allocate
// a route for every packet, which costs more (see BenchmarkSend).
func openRaw(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("open raw socket: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("filter raw socket: %w", err)
	}
	// A full send buffer is reported as ENOBUFS/EAGAIN and counted as a
	// send error rather than blocking the loop for long.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	return fd, nil
}

// open opens the sockets for the families in use.
func (s *sender) open(v4, v6 bool) error {
	var err error
	if v4 && s.fd4 < 0 {
		if s.fd4, err = openRaw(unix.AF_INET); err != nil {
			return err
		}
	}
	if v6 && s.fd6 < 0 {
		if s.fd6, err = openRaw(unix.AF_INET6); err != nil {
			return err
		}
	}
	return nil
}

func (s *sender) close() error {
	var errs []error
	for _, fd := range []*int{&s.fd4, &s.fd6, &s.fdp} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	for ifindex, r := range s.rings {
		if r != nil {
			errs = append(errs, r.close())
		}
		delete(s.rings, ifindex)
	}
	return errors.Join(errs...)
}

// send sends ps (len(ps) <= the batch size, all of one family, all with
// a frame or all without) with as few sendmmsg calls as the kernel
// allows, and returns how many left.
func (s *sender) send(ps []probe) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	if ps[0].f != nil {
		return s.sendFrames(ps)
	}
	fd := s.fd4
	if !ps[0].remote.Is4() {
		fd = s.fd6
	}
	if fd < 0 {
		return 0, fmt.Errorf("send probes: socket for %v not open", ps[0].remote)
	}
	for i := range ps {
		p := &ps[i]
		b := s.bufs[i*maxFrameLen : i*maxFrameLen+synLen]
		n := putSYN(b, p.local, p.remote, p.lport, p.rport, p.seq)
		s.iovs[i] = unix.Iovec{Base: &b[0], Len: uint64(n)}
		m := &s.msgs[i].Hdr
		*m = unix.Msghdr{Iov: &s.iovs[i], Iovlen: 1}
		if p.remote.Is4() {
			s.sa4[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: p.remote.As4()}
			m.Name = (*byte)(unsafe.Pointer(&s.sa4[i]))
			m.Namelen = unix.SizeofSockaddrInet4
		} else {
			s.sa6[i] = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: p.remote.As16()}
			m.Name = (*byte)(unsafe.Pointer(&s.sa6[i]))
			m.Namelen = unix.SizeofSockaddrInet6
		}
	}
	return s.sendmmsg(fd, len(ps))
}

// sendmmsg sends the first count prepared messages. It never blocks
// (MSG_DONTWAIT: a full send buffer is an error, counted), so it is a raw
// system call: the Go scheduler need not hand the P to another thread
// for its duration (which, for a call longer than 20 us, it did, and kept
// its monitor thread waking every 20 us).
func (s *sender) sendmmsg(fd, count int) (int, error) {
	sent := 0
	for sent < count {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd),
			uintptr(unsafe.Pointer(&s.msgs[sent])), uintptr(count-sent), unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return sent, fmt.Errorf("sendmmsg: %w", errno)
		}
		sent += int(n)
	}
	return sent, nil
}

// localAddrFor returns the source address the kernel would use to reach
// remote, by connecting a UDP socket (which sends nothing).
func localAddrFor(remote netip.Addr) (netip.Addr, error) {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: 9, Addr: remote.As16()}
	if remote.Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: 9, Addr: remote.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route lookup: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return netip.Addr{}, fmt.Errorf("route to %v: %w", remote, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route to %v: %w", remote, err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr), nil
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr), nil
	}
	return netip.Addr{}, fmt.Errorf("route to %v: unexpected local address %T", remote, got)
}
