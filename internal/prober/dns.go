package prober

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// dnsChecker is DNS_CHECK: one query (type, name; default SOA for the
// root) over UDP to the endpoint, with a random id and RD set. The first
// datagram with the same id and QR set decides: RCODE 0 passes, any other
// fails; other datagrams are skipped. An ICMP error (port unreachable),
// or no answer within connect_timeout, fails. Only the header is read,
// as keepalived does: an empty NOERROR answer passes.
type dnsChecker struct {
	ep    endpoint
	name  string
	qtype string
	code  uint16
}

func newDNSChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	ep, err := newEndpoint(c)
	if err != nil {
		return nil, err
	}
	d := &dnsChecker{ep: ep, name: config.DefaultDNSName, qtype: config.DefaultDNSType}
	if c.DNS != nil {
		if c.DNS.Name != "" {
			d.name = c.DNS.Name
		}
		if c.DNS.Type != "" {
			d.qtype = c.DNS.Type
		}
	}
	code, ok := dnsTypeCodes[d.qtype]
	if !ok {
		return nil, fmt.Errorf("%s DNS_CHECK: type %s: %w", c.Pos, d.qtype, errConfig)
	}
	d.code = code
	if _, err := buildDNSQuery(0, d.name, code); err != nil {
		return nil, fmt.Errorf("%s DNS_CHECK: %w", c.Pos, err)
	}
	return d, nil
}

// Check sends the query and waits for the answer.
func (d *dnsChecker) Check(ctx context.Context) Result {
	r := newReport(d.String())
	ctx, cancel := d.ep.withTimeout(ctx)
	defer cancel()
	c, err := d.ep.dialUDP(ctx)
	if err != nil {
		return r.fail(fmt.Errorf("connect: %w", err))
	}
	defer c.Close()
	stop := closeOnDone(ctx, c)
	defer stop()
	id := uint16(rand.Uint32())
	q, err := buildDNSQuery(id, d.name, d.code)
	if err != nil {
		return r.fail(err)
	}
	if _, err := c.Write(q); err != nil {
		return r.fail(fmt.Errorf("send query: %w", err))
	}
	r.step("query %s %s", d.qtype, d.name)
	buf := make([]byte, dnsMaxReply)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return r.fail(fmt.Errorf("read answer: %w", ctxErr(ctx, err)))
		}
		switch v, rc := parseDNSReply(buf[:n], id); v {
		case dnsOK:
			r.step("rcode 0")
			return r.ok()
		case dnsFail:
			return r.fail(fmt.Errorf("rcode %d: %w", rc, errDNSRcode))
		}
	}
}

// errDNSRcode is an answer with an error RCODE.
var errDNSRcode = errors.New("DNS error answer")

// Key identifies the check: endpoint, type and name.
func (d *dnsChecker) Key() string {
	return fmt.Sprintf("%s %s type %s name %q", config.DNSCheck, d.ep.key(), d.qtype, d.name)
}

// String names the check: "DNS_CHECK 198.18.1.2:53 SOA .".
func (d *dnsChecker) String() string {
	return fmt.Sprintf("%s %s %s %s", config.DNSCheck, d.ep, d.qtype, d.name)
}

// dialUDP opens a connected UDP socket to the endpoint with its socket
// options, reporting ICMP errors (IP_RECVERR) as read errors.
func (e endpoint) dialUDP(ctx context.Context) (*net.UDPConn, error) {
	d := net.Dialer{Control: e.controlUDP}
	if e.bind.IsValid() || e.port != 0 {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.bind, e.port))
	}
	c, err := d.DialContext(ctx, "udp", e.addr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// closeOnDone sets c's deadline from ctx and unblocks c when ctx is
// cancelled; the returned function stops watching.
func closeOnDone(ctx context.Context, c net.Conn) func() {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	return func() { stop() }
}

// ctxErr names a deadline that ended a read as the check's timeout.
func ctxErr(ctx context.Context, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if ctx.Err() != nil {
			return fmt.Errorf("no answer: %w", ctx.Err())
		}
		return fmt.Errorf("no answer: %w", context.DeadlineExceeded)
	}
	return err
}
