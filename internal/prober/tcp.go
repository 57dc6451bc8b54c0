package prober

import (
	"context"
	"fmt"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// tcpChecker is TCP_CHECK: the check passes when a TCP connection to the
// endpoint is established within connect_timeout. The connection is then
// reset (SO_LINGER 0), never closed gracefully: no TIME_WAIT piles up on
// the director and a close can never block.
type tcpChecker struct {
	ep endpoint
}

func newTCPChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	ep, err := newEndpoint(c)
	if err != nil {
		return nil, err
	}
	return &tcpChecker{ep: ep}, nil
}

// Check connects and resets the connection.
func (t *tcpChecker) Check(ctx context.Context) Result {
	r := newReport(t.String())
	ctx, cancel := t.ep.withTimeout(ctx)
	defer cancel()
	c, err := t.ep.dial(ctx)
	if err != nil {
		return r.fail(fmt.Errorf("connect: %w", err))
	}
	r.step("connected")
	if err := c.Close(); err != nil {
		return r.fail(fmt.Errorf("close: %w", err))
	}
	return r.ok()
}

// Key identifies the check: type, endpoint and connection options.
func (t *tcpChecker) Key() string { return string(config.TCPCheck) + " " + t.ep.key() }

// String names the check: "TCP_CHECK 198.18.1.2:80".
func (t *tcpChecker) String() string { return string(config.TCPCheck) + " " + t.ep.String() }
