package synprobe

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openPacket opens the send-only packet socket for prebuilt frames. It
// bypasses the qdisc (PACKET_QDISC_BYPASS): a probe lost to a full
// device queue is a miss like any other, and the kernel skips the
// routing, neighbour and netfilter work the raw sockets pay per packet.
// Protocol 0: it receives nothing.
func openPacket() (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open packet socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("packet socket qdisc bypass: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	return fd, nil
}

// openFrames opens the packet socket if it is not open yet.
func (s *sender) openFrames() error {
	if s.fdp >= 0 {
		return nil
	}
	fd, err := openPacket()
	if err != nil {
		return err
	}
	s.fdp = fd
	return nil
}

// sendFrames sends probes that all have a frame: into the TX ring of
// their interface where it opens (flushed every ringChunk frames and at
// the end), the rest (a full ring, an interface without one) with
// sendmmsg on the packet socket. A frame in a ring counts as sent: if the
// device's queue is full it waits there for the next flush (see
// [sender.flushRings]); one given up later is counted by takeDropped.
func (s *sender) sendFrames(ps []probe) (int, error) {
	s.rest = s.rest[:0]
	s.touched = s.touched[:0]
	sent := 0
	for i := range ps {
		p := &ps[i]
		r := s.ring(p.f.ifindex)
		if r == nil || !r.put(p) {
			s.rest = append(s.rest, *p)
			continue
		}
		sent++
		switch r.fresh {
		case 1:
			s.touched = append(s.touched, r)
		case ringChunk:
			s.dropped += r.flush() // what waits goes with the next flush
		}
	}
	for _, r := range s.touched {
		s.dropped += r.flush()
	}
	var errs []error
	for rest := s.rest; len(rest) > 0; {
		k := min(len(rest), len(s.msgs))
		n, err := s.sendFramesMsg(rest[:k])
		sent += n
		if err != nil {
			errs = append(errs, err)
		}
		rest = rest[k:]
	}
	return sent, errors.Join(errs...)
}

// queued returns how many frames wait in the TX rings for their device.
func (s *sender) queued() int {
	n := 0
	for _, r := range s.rings {
		if r != nil {
			n += r.queued
		}
	}
	return n
}

// flushRings sends what waits in the TX rings.
func (s *sender) flushRings() {
	for _, r := range s.rings {
		if r != nil && r.queued > 0 {
			s.dropped += r.flush()
		}
	}
}

// takeDropped returns, and forgets, how many frames the TX rings gave up
// since the last call (see [txRing.flush]): counted as sent when they
// went into the ring, they are send errors too.
func (s *sender) takeDropped() int {
	n := s.dropped
	s.dropped = 0
	return n
}

// ring returns the TX ring of the interface, opening it on first use;
// nil where it cannot be opened (the reason is logged once by the
// caller's metrics: such probes go through sendmmsg).
func (s *sender) ring(ifindex int) *txRing {
	if s.noRings {
		return nil
	}
	if r, ok := s.rings[ifindex]; ok {
		return r
	}
	r, err := openTxRing(ifindex)
	if err != nil {
		s.ringErr = err
		r = nil
	}
	if s.rings == nil {
		s.rings = map[int]*txRing{}
	}
	s.rings[ifindex] = r
	return r
}

// sendFramesMsg sends probes that all have a frame on the packet socket
// with sendmmsg (len(ps) <= the batch size).
func (s *sender) sendFramesMsg(ps []probe) (int, error) {
	if s.fdp < 0 {
		return 0, fmt.Errorf("send probes: packet socket not open")
	}
	for i := range ps {
		p := &ps[i]
		b := s.bufs[i*maxFrameLen : (i+1)*maxFrameLen]
		n := p.f.put(b, p.local, p.remote, p.lport, p.rport, p.seq)
		s.iovs[i] = unix.Iovec{Base: &b[0], Len: uint64(n)}
		s.sll[i] = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(p.f.proto), Ifindex: int32(p.f.ifindex)}
		s.msgs[i].Hdr = unix.Msghdr{Iov: &s.iovs[i], Iovlen: 1,
			Name: (*byte)(unsafe.Pointer(&s.sll[i])), Namelen: unix.SizeofSockaddrLinklayer}
	}
	return s.sendmmsg(s.fdp, len(ps))
}
