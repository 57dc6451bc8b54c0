package prober

import (
	"context"
	"fmt"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// tcpChecker is TCP_CHECK: the check passes when a TCP connection to the
// endpoint is established within connect_timeout. The connection is then
// reset (SO_LINGER 0), never closed gracefully: no TIME_WAIT piles up on
// the director and a close can never block.
type tcpChecker struct {
	ep      endpoint
	okMsg   string // the message of a passed check, computed once: String() + okSuffix
	nameLen int32  // String() is okMsg[:nameLen] (one string kept per checker, not two)
	zone    uint32 // the interface index ep.addr's IPv6 zone names; 0 without a zone
	zoneBad bool   // the zone names no interface (yet): looked up again per check
}

// okSuffix ends the message of a passed TCP_CHECK.
const okSuffix = ": connected; ok"

func newTCPChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	ep, err := newEndpoint(c)
	if err != nil {
		return nil, err
	}
	name := string(config.TCPCheck) + " " + ep.String()
	t := &tcpChecker{ep: ep, okMsg: name + okSuffix, nameLen: int32(len(name))}
	t.zone, err = zoneIndex(ep.addr.Addr())
	t.zoneBad = err != nil // the error is made again by the check's retry
	return t, nil
}

// Check connects and resets the connection.
func (t *tcpChecker) Check(ctx context.Context) Result {
	// connectReset: a raw nonblocking socket on the shared epoll
	// connector (connect.go), closed with a RST. The passing path
	// allocates nothing of its own: it runs 10,000 times a second.
	start := time.Now()
	if t.zoneBad {
		zone, err := zoneIndex(t.ep.addr.Addr())
		if err != nil {
			r := newReport(t.String())
			return r.fail(fmt.Errorf("connect: %w", err))
		}
		t.zone, t.zoneBad = zone, false
	}
	sa := rawSockaddrOf(t.ep.addr, t.zone)
	if err := t.connectReset(ctx, &sa); err != nil {
		r := newReport(t.String())
		r.start = start
		return r.fail(fmt.Errorf("connect: %w", err))
	}
	return Result{OK: true, Message: t.okMsg, Duration: time.Since(start)}
}

// Key identifies the check: type, endpoint and connection options.
func (t *tcpChecker) Key() string { return string(config.TCPCheck) + " " + t.ep.key() }

// String names the check: "TCP_CHECK 198.18.1.2:80".
func (t *tcpChecker) String() string { return t.okMsg[:t.nameLen] }
