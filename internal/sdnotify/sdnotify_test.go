package sdnotify

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listener is a real unixgram socket standing in for systemd.
type listener struct {
	t *testing.T
	c *net.UnixConn
}

func listen(t *testing.T, name string) *listener {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &listener{t: t, c: c}
}

// next returns the lines of the next datagram.
func (l *listener) next() []string {
	l.t.Helper()
	if err := l.c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		l.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := l.c.Read(buf)
	if err != nil {
		l.t.Fatalf("no datagram: %v", err)
	}
	s := string(buf[:n])
	if !strings.HasSuffix(s, "\n") {
		l.t.Errorf("datagram %q does not end in a newline", s)
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func TestMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) (listenOn, notifySocket string)
	}{
		{"path", func(t *testing.T) (string, string) {
			p := filepath.Join(t.TempDir(), "notify")
			return p, p
		}},
		{"abstract", func(t *testing.T) (string, string) {
			n := "@lvsprobe-sdnotify-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			return n, n
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on, env := tc.addr(t)
			l := listen(t, on)
			t.Setenv("NOTIFY_SOCKET", env)
			n := FromEnv()
			defer n.Close()
			if err := n.Ready("3 virtual servers\nsecond line"); err != nil {
				t.Fatal(err)
			}
			if got := l.next(); strings.Join(got, "|") != "READY=1|STATUS=3 virtual servers" {
				t.Errorf("ready: %q", got)
			}
			before := monotonicUsec()
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			got := l.next()
			if len(got) != 2 || got[0] != "RELOADING=1" || !strings.HasPrefix(got[1], "MONOTONIC_USEC=") {
				t.Fatalf("reloading: %q", got)
			}
			us, err := strconv.ParseInt(strings.TrimPrefix(got[1], "MONOTONIC_USEC="), 10, 64)
			if err != nil || us < before || us > monotonicUsec() {
				t.Errorf("MONOTONIC_USEC %q not between %d and now", got[1], before)
			}
			if err := n.Stopping(); err != nil {
				t.Fatal(err)
			}
			if got := l.next(); got[0] != "STOPPING=1" {
				t.Errorf("stopping: %q", got)
			}
			if err := n.Send("NOT A PAIR"); err == nil {
				t.Error("a line without = was sent")
			}
		})
	}
}

func TestNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n != nil {
		t.Fatal("a Notifier without NOTIFY_SOCKET")
	}
	if err := n.Ready("x"); err != nil { // nil receiver: no-op
		t.Fatal(err)
	}
	n.Watchdog(context.Background(), time.Second, nil, nil) // returns at once
	// A socket that is gone is an error, not a hang.
	gone := New(filepath.Join(t.TempDir(), "missing"))
	if err := gone.Ready("x"); err == nil {
		t.Error("send to a missing socket succeeded")
	}
}

func TestWatchdogInterval(t *testing.T) {
	tests := []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, true},
		{"30000000", "42", 30 * time.Second, true},
		{"30000000", "43", 0, false}, // meant for another process
		{"0", "", 0, false},
		{"x", "", 0, false},
		{"-5", "", 0, false},
		{"30000000", "y", 0, false},
	}
	for _, tt := range tests {
		d, ok := watchdogFrom(tt.usec, tt.pid, 42)
		if d != tt.want || ok != tt.ok {
			t.Errorf("watchdogFrom(%q, %q) = %v, %v; want %v, %v", tt.usec, tt.pid, d, ok, tt.want, tt.ok)
		}
	}
}

// TestWatchdogFollowsLiveness: pings while alive, none while not, and
// they resume when the loop is alive again.
func TestWatchdogFollowsLiveness(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notify")
	l := listen(t, p)
	n := New(p)
	defer n.Close()
	var stalled atomic.Bool
	missed := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.Watchdog(ctx, 20*time.Millisecond, func() error {
			if stalled.Load() {
				return ErrNotAlive
			}
			return nil
		}, func(err error) {
			if errors.Is(err, ErrNotAlive) {
				missed <- struct{}{}
			}
		})
		close(done)
	}()
	for range 3 {
		if got := l.next(); len(got) != 1 || got[0] != "WATCHDOG=1" {
			t.Fatalf("ping %q", got)
		}
	}
	stalled.Store(true)
	miss := func() {
		t.Helper()
		select {
		case <-missed:
		case <-time.After(10 * time.Second):
			t.Fatal("watchdog never held a ping back")
		}
	}
	pending := func() int { // datagrams waiting now
		t.Helper()
		if err := l.c.SetReadDeadline(time.Now()); err != nil {
			t.Fatal(err)
		}
		buf, k := make([]byte, 64), 0
		for {
			if _, err := l.c.Read(buf); err != nil {
				return k
			}
			k++
		}
	}
	miss()
	pending() // pings sent before the stall was seen
	miss()
	miss()
	if k := pending(); k != 0 {
		t.Errorf("%d pings sent while the loop was stalled", k)
	}
	stalled.Store(false)
	if got := l.next(); len(got) != 1 || got[0] != "WATCHDOG=1" {
		t.Fatalf("after recovery %q", got)
	}
	cancel()
	<-done
}
