package prober

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"golang.org/x/sys/unix"
)

// pingSeq numbers echo requests across all PING_CHECKs, as keepalived's
// seq_no does.
var pingSeq atomic.Uint32

// pingChecker is PING_CHECK: one ICMP (IPv4) or ICMPv6 echo request to
// connect_ip; an echo reply within connect_timeout passes, an ICMP error
// or silence fails. Like keepalived it uses an unprivileged ping socket
// (SOCK_DGRAM, IPPROTO_ICMP[V6]); keepalived widens
// net.ipv4.ping_group_range to allow that, lvsprobe does not touch the
// sysctl and falls back to a raw socket (CAP_NET_RAW) when the ping
// socket is refused. The raw socket filters on echo replies from the
// target with its own id and sequence; ICMP errors are then not seen and
// the check fails at its timeout instead. Like keepalived, bindto,
// bind_port, bind_if, fwmark and connect_port do not apply.
type pingChecker struct {
	addr    netip.Addr
	timeout time.Duration
}

func newPingChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	if !c.ConnectIP.IsValid() {
		return nil, fmt.Errorf("%s PING_CHECK: no address to ping: %w", c.Pos, errConfig)
	}
	t := c.ConnectTimeout
	if t <= 0 {
		t = config.DefaultConnectTimeout
	}
	addr := c.ConnectIP.Unmap()
	if addr.Is6() && addr.IsLinkLocalUnicast() && addr.Zone() == "" && c.BindIf != "" {
		addr = addr.WithZone(c.BindIf) // a link-local address needs its interface (config requires bind_if)
	}
	return &pingChecker{addr: addr, timeout: t}, nil
}

// Check sends one echo request and waits for the reply.
func (p *pingChecker) Check(ctx context.Context) Result {
	r := newReport(p.String())
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	f, raw, err := openPing(p.addr)
	if err != nil {
		return r.fail(err)
	}
	defer f.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	v6 := p.addr.Is6()
	id := uint16(rand.Uint32()) // a ping socket replaces it with its own
	seq := uint16(pingSeq.Add(1))
	if _, err := f.Write(buildEchoRequest(v6, id, seq)); err != nil {
		return r.fail(fmt.Errorf("send echo request: %w", err))
	}
	want := uint8(icmpEchoReply)
	if v6 {
		want = icmp6EchoReply
	}
	buf := make([]byte, 20+60+icmpEchoHeaderLen+icmpPayloadLen)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				return r.fail(fmt.Errorf("no echo reply: %w", err))
			}
			return r.fail(fmt.Errorf("receive: %w", err))
		}
		e, err := parseICMPEcho(buf[:n], raw && !v6)
		if err != nil {
			if raw {
				continue
			}
			return r.fail(err)
		}
		if e.Seq != seq || raw && (e.Type != want || e.ID != id) {
			continue // a raw socket sees every echo reply from the target
		}
		if e.Type != want {
			return r.fail(fmt.Errorf("ICMP type %d, not an echo reply: %w", e.Type, errNotEchoReply))
		}
		r.step("echo reply")
		return r.ok()
	}
}

// errNotEchoReply is an answer other than an echo reply.
var errNotEchoReply = errors.New("unexpected ICMP message")

// openPing opens a socket connected to addr that sends echo requests: a
// ping socket if the kernel allows one (ping_group_range), else a raw
// socket. raw reports which.
func openPing(addr netip.Addr) (f *os.File, raw bool, err error) {
	fam, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if addr.Is6() {
		fam, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EPROTONOSUPPORT) {
			return nil, false, fmt.Errorf("ping socket: %w", err)
		}
		fd, err = unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return nil, false, fmt.Errorf("ping socket refused (net.ipv4.ping_group_range) and raw ICMP socket: %w", err)
		}
		raw = true
	}
	if err := setupPing(fd, addr, raw); err != nil {
		_ = unix.Close(fd)
		return nil, false, err
	}
	return os.NewFile(uintptr(fd), "icmp "+addr.String()), raw, nil
}

// setupPing filters a raw socket to echo replies, asks a ping socket for
// ICMP errors, and connects the socket to addr.
func setupPing(fd int, addr netip.Addr, raw bool) error {
	var err error
	switch {
	case raw && addr.Is4():
		// ICMP_FILTER: a bit set blocks that type.
		err = unix.SetsockoptInt(fd, unix.SOL_RAW, unix.ICMP_FILTER, ^(1 << icmpEchoReply))
	case raw:
		var flt unix.ICMPv6Filter
		for i := range flt.Data {
			flt.Data[i] = ^uint32(0)
		}
		flt.Data[icmp6EchoReply>>5] &^= 1 << (icmp6EchoReply & 31)
		err = unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &flt)
	case addr.Is4():
		err = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_RECVERR, 1)
	default:
		err = unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
	}
	if err != nil {
		return fmt.Errorf("ICMP socket options: %w", err)
	}
	var sa unix.Sockaddr
	if addr.Is4() {
		sa = &unix.SockaddrInet4{Addr: addr.As4()}
	} else {
		s6 := &unix.SockaddrInet6{Addr: addr.As16()}
		if z := addr.Zone(); z != "" {
			if ifi, err := netInterfaceIndex(z); err == nil {
				s6.ZoneId = uint32(ifi)
			}
		}
		sa = s6
	}
	if err := unix.Connect(fd, sa); err != nil {
		return fmt.Errorf("connect ICMP socket to %s: %w", addr, err)
	}
	return nil
}

// Key identifies the check: address and timeout.
func (p *pingChecker) Key() string {
	return fmt.Sprintf("%s %s timeout %v", config.PingCheck, p.addr, p.timeout)
}

// String names the check: "PING_CHECK 198.18.1.2".
func (p *pingChecker) String() string { return string(config.PingCheck) + " " + p.addr.String() }
