package prober

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"golang.org/x/sys/unix"
)

// errConfig reports a checker block that cannot be run as written.
var errConfig = errors.New("invalid checker")

// endpoint is where and how a checker connects: the connection options
// every TCP-based checker shares (connect_ip, connect_port, bindto,
// bind_port, bind_if, fwmark, connect_timeout). The options most
// checkers leave unset live behind a shared pointer (epOpts): an endpoint
// is 48 bytes instead of 88, kept once per checker (10,000 of them at
// 10,000 real servers).
type endpoint struct {
	addr    netip.AddrPort // connect_ip:connect_port
	timeout time.Duration  // connect_timeout
	*epOpts                // never nil: &noOpts when none is set; equal options share one (internOpts)
}

// epOpts are an endpoint's socket options.
type epOpts struct {
	bind   netip.Addr // bindto; invalid when unset
	bindIf string     // bind_if: SO_BINDTODEVICE
	fwmark uint32     // fwmark: SO_MARK
	port   uint16     // bind_port; 0 when unset
}

// noOpts are the options of an endpoint that sets none.
var noOpts epOpts

// optsSeen interns the option sets in use: one copy of each, however many
// checkers share it (a few distinct sets per configuration at most).
var (
	optsMu   sync.Mutex
	optsSeen = map[epOpts]*epOpts{}
)

// internOpts returns the shared copy of o.
func internOpts(o epOpts) *epOpts {
	if o == (epOpts{}) {
		return &noOpts
	}
	optsMu.Lock()
	defer optsMu.Unlock()
	if p := optsSeen[o]; p != nil {
		return p
	}
	p := &o
	optsSeen[o] = p
	return p
}

// newEndpoint takes the connection options of c.
func newEndpoint(c *config.Checker) (endpoint, error) {
	e := endpoint{
		addr:    netip.AddrPortFrom(c.ConnectIP, c.ConnectPort),
		timeout: c.ConnectTimeout,
		epOpts:  internOpts(epOpts{bind: c.BindTo, port: c.BindPort, bindIf: c.BindIf, fwmark: c.FWMark}),
	}
	if !c.ConnectIP.IsValid() || c.ConnectPort == 0 {
		return e, fmt.Errorf("%s %s: no address to connect to (connect_ip %v, connect_port %d): %w",
			c.Pos, c.Type, c.ConnectIP, c.ConnectPort, errConfig)
	}
	if e.bind.IsValid() && e.bind.Is4() != e.addr.Addr().Is4() {
		return e, fmt.Errorf("%s %s: bindto %v and connect_ip %v differ in family: %w", c.Pos, c.Type, e.bind, e.addr.Addr(), errConfig)
	}
	if e.timeout <= 0 {
		e.timeout = config.DefaultConnectTimeout
	}
	return e, nil
}

// String returns "ADDR:PORT", the way results name the endpoint.
func (e endpoint) String() string { return e.addr.String() }

// key identifies the endpoint and every option that changes the packets
// sent, for [Checker.Key].
func (e endpoint) key() string {
	k := e.addr.String()
	if e.bind.IsValid() || e.port != 0 {
		k += " bindto " + netip.AddrPortFrom(e.bind, e.port).String()
	}
	if e.bindIf != "" {
		k += " bind_if " + e.bindIf
	}
	if e.fwmark != 0 {
		k += " fwmark " + strconv.FormatUint(uint64(e.fwmark), 10)
	}
	return k + " timeout " + e.timeout.String()
}

// control sets the socket options of the checker on the socket before
// connect: SO_MARK, SO_BINDTODEVICE and, with bind_port, SO_REUSEADDR (a
// fixed source port would otherwise be unusable while an earlier
// connection from it lingers).
func (e endpoint) control(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if e.fwmark != 0 {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(e.fwmark)); err != nil {
				serr = fmt.Errorf("set SO_MARK %d: %w", e.fwmark, err)
				return
			}
		}
		if e.bindIf != "" {
			if err := unix.BindToDevice(int(fd), e.bindIf); err != nil {
				serr = fmt.Errorf("bind to device %s: %w", e.bindIf, err)
				return
			}
		}
		if e.port != 0 {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				serr = fmt.Errorf("set SO_REUSEADDR: %w", err)
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("socket control: %w", err)
	}
	return serr
}

// withTimeout bounds ctx by the endpoint's connect_timeout.
func (e endpoint) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.timeout)
}
