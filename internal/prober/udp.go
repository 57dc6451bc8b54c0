package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"golang.org/x/sys/unix"
)

// udpDefaultPayload is what keepalived sends without a payload line: 32
// bytes of "keepalived check - " repeated (layer4.c's set_buf, UDP_BUFSIZE).
var udpDefaultPayload = fillPattern(32)

// fillPattern repeats keepalived's set_buf text over n bytes.
func fillPattern(n int) []byte {
	const s = "keepalived check - "
	return []byte(strings.Repeat(s, n/len(s)+1)[:n])
}

// udpChecker is UDP_CHECK: one datagram (payload, or keepalived's filler)
// to the endpoint on a connected socket with IP_RECVERR. An ICMP error
// (port or host unreachable) fails. Without require_reply, silence until
// connect_timeout passes, as does any reply. With require_reply a reply
// must come; with reply data it must be min_reply_length..max_reply_length
// bytes long and match the data over the shorter of the two, bits set in
// 'x' nibbles ignored (check_udp_reply).
type udpChecker struct {
	ep      endpoint
	payload []byte
	opts    config.UDPOptions
}

func newUDPChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	ep, err := newEndpoint(c)
	if err != nil {
		return nil, err
	}
	u := &udpChecker{ep: ep, payload: udpDefaultPayload, opts: config.UDPOptions{MaxReplyLen: 255}}
	if c.UDP != nil {
		u.opts = *c.UDP
		if len(c.UDP.Payload) > 0 {
			u.payload = c.UDP.Payload
		}
	}
	return u, nil
}

// Check sends the datagram and waits for a reply or an ICMP error.
func (u *udpChecker) Check(ctx context.Context) Result {
	r := newReport(u.String())
	ctx, cancel := u.ep.withTimeout(ctx)
	defer cancel()
	c, err := u.ep.dialUDP(ctx)
	if err != nil {
		return r.fail(fmt.Errorf("connect: %w", err))
	}
	defer c.Close()
	stop := closeOnDone(ctx, c)
	defer stop()
	if _, err := c.Write(u.payload); err != nil {
		return r.fail(fmt.Errorf("send: %w", err))
	}
	r.step("sent %d bytes", len(u.payload))
	buf := make([]byte, u.opts.MaxReplyLen+1)
	n, err := c.Read(buf)
	var ne net.Error
	switch {
	case err != nil && errors.As(err, &ne) && ne.Timeout():
		if parent := context.Cause(ctx); parent != nil && !errors.Is(parent, context.DeadlineExceeded) {
			return r.fail(fmt.Errorf("cancelled: %w", parent))
		}
		if u.opts.RequireReply {
			return r.fail(fmt.Errorf("no reply: %w", context.DeadlineExceeded))
		}
		r.step("no reply, no ICMP error")
		return r.ok()
	case err != nil:
		return r.fail(fmt.Errorf("receive: %w", err))
	}
	r.step("reply of %d bytes", n)
	if err := u.matchReply(buf[:n]); err != nil {
		return r.fail(err)
	}
	return r.ok()
}

// errUDPReply is a reply that does not match require_reply.
var errUDPReply = errors.New("reply mismatch")

// matchReply is keepalived's check_udp_reply, applied only when
// require_reply gives data.
func (u *udpChecker) matchReply(b []byte) error {
	o := u.opts
	if len(o.Reply) == 0 {
		return nil
	}
	if len(b) < o.MinReplyLen || len(b) > o.MaxReplyLen {
		return fmt.Errorf("reply length %d outside %d..%d: %w", len(b), o.MinReplyLen, o.MaxReplyLen, errUDPReply)
	}
	n := min(len(b), len(o.Reply))
	for i := range n {
		mask := byte(0xff) // config's mask: the bits compared ('x' nibbles cleared)
		if i < len(o.ReplyMask) {
			mask = o.ReplyMask[i]
		}
		if (b[i]^o.Reply[i])&mask != 0 {
			return fmt.Errorf("reply byte %d is %#02x, want %#02x: %w", i, b[i], o.Reply[i], errUDPReply)
		}
	}
	return nil
}

// Key identifies the check: endpoint, payload and reply rules.
func (u *udpChecker) Key() string {
	o := u.opts
	return fmt.Sprintf("%s %s payload %x reply %t %d-%d %x/%x", config.UDPCheck, u.ep.key(), u.payload,
		o.RequireReply, o.MinReplyLen, o.MaxReplyLen, o.Reply, o.ReplyMask)
}

// String names the check: "UDP_CHECK 198.18.1.2:53".
func (u *udpChecker) String() string { return string(config.UDPCheck) + " " + u.ep.String() }

// controlUDP is control plus IP_RECVERR / IPV6_RECVERR, so that ICMP
// errors reach the socket (keepalived's udp_bind_connect sets them).
func (e endpoint) controlUDP(network, address string, rc syscall.RawConn) error {
	if err := e.control(network, address, rc); err != nil {
		return err
	}
	var serr error
	err := rc.Control(func(fd uintptr) {
		if e.addr.Addr().Is4() {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVERR, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
		}
	})
	if err != nil {
		return fmt.Errorf("socket control: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set RECVERR: %w", serr)
	}
	return nil
}
