package prober

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// realChecker builds the package's checker for c; until the TCP checker
// lands (NewChecker answers ErrUnsupported), TCP_CHECK falls back to
// connectChecker, a minimal real connect.
func realChecker(c *config.Checker, opts CheckerOptions) (Checker, error) {
	ck, err := NewChecker(c, opts)
	if errors.Is(err, ErrUnsupported) && c.Type == config.TCPCheck {
		return &connectChecker{ep: netip.AddrPortFrom(c.ConnectIP, c.ConnectPort), timeout: c.ConnectTimeout}, nil
	}
	return ck, err
}

// connectChecker connects over real TCP and resets the connection
// (SO_LINGER 0, so no TIME_WAIT).
type connectChecker struct {
	ep      netip.AddrPort
	timeout time.Duration
}

func (c *connectChecker) Key() string    { return "test-connect " + c.ep.String() }
func (c *connectChecker) String() string { return "TCP_CHECK(test) " + c.ep.String() }

func (c *connectChecker) Check(ctx context.Context) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.ep.String())
	if err != nil {
		return Result{Message: "connect " + c.ep.String() + ": " + err.Error(), Err: err, Duration: time.Since(start)}
	}
	_ = conn.(*net.TCPConn).SetLinger(0)
	_ = conn.Close()
	return Result{OK: true, Message: "connect " + c.ep.String(), Duration: time.Since(start)}
}

// attemptLog wraps checkers to record every attempt's result, and signals
// each one, so tests wait for attempts instead of sleeping.
type attemptLog struct {
	mu    sync.Mutex
	items []attemptRecord
	tick  chan struct{}
	build func(*config.Checker, CheckerOptions) (Checker, error)
}

type attemptRecord struct {
	at time.Time // completion
	ok bool
}

func newAttemptLog(build func(*config.Checker, CheckerOptions) (Checker, error)) *attemptLog {
	return &attemptLog{tick: make(chan struct{}, 1), build: build}
}

func (l *attemptLog) newChecker(c *config.Checker, opts CheckerOptions) (Checker, error) {
	ck, err := l.build(c, opts)
	if err != nil {
		return nil, err
	}
	return &loggedChecker{Checker: ck, log: l}, nil
}

func (l *attemptLog) records() []attemptRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]attemptRecord(nil), l.items...)
}

type loggedChecker struct {
	Checker
	log *attemptLog
}

func (c *loggedChecker) Check(ctx context.Context) Result {
	r := c.Checker.Check(ctx)
	c.log.mu.Lock()
	c.log.items = append(c.log.items, attemptRecord{at: time.Now(), ok: r.OK})
	c.log.mu.Unlock()
	select {
	case c.log.tick <- struct{}{}:
	default:
	}
	return r
}
