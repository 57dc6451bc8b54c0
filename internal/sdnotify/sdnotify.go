// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)) natively: newline-separated KEY=VALUE lines in one
// datagram to the unix socket named by $NOTIFY_SOCKET (a path, or an
// abstract name written with a leading '@'). It has no dependency and does
// nothing when the daemon was not started by systemd.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to the service manager. A nil *Notifier
// is valid and sends nothing, so callers need not check for systemd.
// Methods are safe for concurrent use.
type Notifier struct {
	addr *net.UnixAddr
	mu   sync.Mutex
	conn *net.UnixConn // datagram socket connected to addr, opened on first use
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or nil when it is unset.
// It does not unset the variable: scripts started later do not inherit
// the right to speak for the daemon only because they never read it; the
// caller may unset it.
func FromEnv() *Notifier {
	return New(os.Getenv("NOTIFY_SOCKET"))
}

// New returns a Notifier for the socket at path ("@name" for an abstract
// socket), or nil when path is empty.
func New(path string) *Notifier {
	if path == "" {
		return nil
	}
	// The Go runtime turns a leading '@' into the abstract namespace's
	// leading NUL, which is what systemd's "@" convention means.
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Send sends the given KEY=VALUE lines as one datagram.
func (n *Notifier) Send(lines ...string) error {
	if n == nil {
		return nil
	}
	for _, l := range lines {
		if !strings.Contains(l, "=") {
			return fmt.Errorf("sd_notify: %q is not KEY=VALUE", l)
		}
	}
	msg := []byte(strings.Join(lines, "\n") + "\n")
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		c, err := net.DialUnix("unixgram", nil, n.addr)
		if err != nil {
			return fmt.Errorf("sd_notify: connect %s: %w", n.addr.Name, err)
		}
		n.conn = c
	}
	if _, err := n.conn.Write(msg); err != nil {
		n.conn.Close() // the manager's socket may be new: connect again next time
		n.conn = nil
		return fmt.Errorf("sd_notify to %s: %w", n.addr.Name, err)
	}
	return nil
}

// Close releases the socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

// Ready tells the manager start-up (or a reload) is complete, with a
// human-readable status line.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+oneLine(status))
}

// Reloading tells the manager a configuration reload has begun; Ready
// ends it. MONOTONIC_USEC is the CLOCK_MONOTONIC time systemd's
// Type=notify-reload (systemd 253+) requires; older managers ignore it.
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping tells the manager the daemon is shutting down.
func (n *Notifier) Stopping() error {
	return n.Send("STOPPING=1", "STATUS=stopping")
}

// Status sets the status line `systemctl status` shows.
func (n *Notifier) Status(status string) error {
	return n.Send("STATUS=" + oneLine(status))
}

// oneLine keeps a status to its first line: a newline would start a
// new KEY=VALUE assignment.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// monotonicUsec returns CLOCK_MONOTONIC in microseconds.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

// WatchdogInterval returns the watchdog timeout systemd asks for
// (WatchdogSec=, passed as $WATCHDOG_USEC), and whether it applies to
// this process ($WATCHDOG_PID, when set, must be ours).
func WatchdogInterval() (time.Duration, bool) {
	return watchdogFrom(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogFrom(usec, pid string, self int) (time.Duration, bool) {
	if usec == "" {
		return 0, false
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != self {
			return 0, false
		}
	}
	u, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || u <= 0 || u > math.MaxInt64/int64(time.Microsecond) {
		return 0, false // not a positive time.Duration
	}
	return time.Duration(u) * time.Microsecond, true
}

// ErrNotAlive is what an alive function returns to hold the watchdog
// ping back (any error does).
var ErrNotAlive = errors.New("not alive")

// Watchdog sends WATCHDOG=1 every interval/2 until ctx is done, but only
// while alive returns nil: when the daemon's work loop stalls, the pings
// stop and systemd restarts the service after the interval. onMiss, if
// not nil, is told each time a ping is held back and why.
func (n *Notifier) Watchdog(ctx context.Context, interval time.Duration, alive func() error, onMiss func(error)) {
	if n == nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		if err := alive(); err != nil {
			if onMiss != nil {
				onMiss(err)
			}
		} else if err := n.Send("WATCHDOG=1"); err != nil && onMiss != nil {
			onMiss(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
