package ipvs

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// opLog is a Backend that records, in order, the reads of the service
// list (a full pass's read of the table) and the destination deletes.
type opLog struct {
	Backend
	ops chan string
}

func (b *opLog) Services(ctx context.Context) ([]Service, error) {
	b.ops <- "read"
	return b.Backend.Services(ctx)
}

func (b *opLog) DeleteDestination(ctx context.Context, svc config.ServiceKey, d Destination) error {
	b.ops <- "delete " + d.Addr.String()
	return b.Backend.DeleteDestination(ctx, svc, d)
}

// lockedClock is a fake clock safe to read from Run's goroutine.
type lockedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *lockedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *lockedClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A health change that arrives when a resync is due is written before the
// resync reads the table: the read and the full comparison of every real
// server must not stand between a detection and its write.
func TestRunWritesAChangeBeforeADueResync(t *testing.T) {
	vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1))
	b := &opLog{Backend: NewDryRun(nil, nil), ops: make(chan string, 100)}
	clock := &lockedClock{t: time.Unix(1_700_000_000, 0)}
	// The resync interval is an hour of the fake clock: Run's own timer
	// (real time) never fires in this test; only the clock makes it due.
	r := NewReconciler(b, configOf(vs), ReconcilerOptions{ResyncInterval: time.Hour, now: clock.now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	next := func() string {
		t.Helper()
		select {
		case op := <-b.ops:
			return op
		case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
			t.Fatal("no backend call")
			return ""
		}
	}
	if op := next(); op != "read" {
		t.Fatalf("first pass: %q, want the read", op)
	}

	// Within the interval: a change is one incremental pass, no read.
	r.SetHealth(key(vs, 0), false)
	if op := next(); op != "delete 198.18.1.1" {
		t.Fatalf("change within the resync interval: %q, want the delete", op)
	}

	// Past the interval: the change first, then the resync's read.
	clock.advance(2 * time.Hour)
	r.SetHealth(key(vs, 1), false)
	if op := next(); op != "delete 198.18.1.2" {
		t.Fatalf("change with a resync due: first backend call %q, want the delete (the read would delay it)", op)
	}
	if op := next(); op != "read" {
		t.Fatalf("change with a resync due: then %q, want the resync's read", op)
	}
}
