package ipvs

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// faulty wraps a Backend and fails the writes inject picks.
type faulty struct {
	Backend
	mu     sync.Mutex
	inject func(op OpKind, svc config.ServiceKey, d Destination) error
	calls  map[OpKind]int
}

func newFaulty(b Backend, inject func(OpKind, config.ServiceKey, Destination) error) *faulty {
	return &faulty{Backend: b, inject: inject, calls: map[OpKind]int{}}
}

func (f *faulty) check(op OpKind, svc config.ServiceKey, d Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if f.inject == nil {
		return nil
	}
	return f.inject(op, svc, d)
}

func (f *faulty) AddService(ctx context.Context, s Service) error {
	if err := f.check(OpAddService, s.ServiceKey, Destination{}); err != nil {
		return err
	}
	return f.Backend.AddService(ctx, s)
}

func (f *faulty) AddDestination(ctx context.Context, svc config.ServiceKey, d Destination) error {
	if err := f.check(OpAddDestination, svc, d); err != nil {
		return err
	}
	return f.Backend.AddDestination(ctx, svc, d)
}

func (f *faulty) UpdateDestination(ctx context.Context, svc config.ServiceKey, d Destination) error {
	if err := f.check(OpUpdateDestination, svc, d); err != nil {
		return err
	}
	return f.Backend.UpdateDestination(ctx, svc, d)
}

func TestReconcilerBacksOffFailedWrites(t *testing.T) {
	bad := netip.MustParseAddr("198.18.1.2")
	failures := 3
	vsOK := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1))
	vsNoSched := virtualServer("198.18.0.2", 80, realServer("198.18.1.1", 80, 1))
	vsNoSched.Scheduler = "nosuch" // the kernel answers ENOENT for a scheduler it cannot load
	f := newFaulty(nil, func(op OpKind, svc config.ServiceKey, d Destination) error {
		if op == OpAddService && svc.Addr == vsNoSched.Addr {
			return syscall.ENOENT
		}
		if op == OpAddDestination && d.Addr == bad && failures > 0 {
			failures--
			return syscall.EINVAL
		}
		return nil
	})
	out := newBuffer()
	dry := NewDryRun(nil, out)
	f.Backend = dry
	h := newHarnessOn(t, dry, out, f, configOf(vsOK, vsNoSched))

	cmds, err := h.passErr()
	if !errors.Is(err, syscall.EINVAL) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("pass error = %v, want EINVAL and ENOENT", err)
	}
	want := []string{"ipvsadm -A -t 198.18.0.1:80 -s wlc", "ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 1"}
	if diff := cmp.Diff(want, cmds); diff != "" {
		t.Fatalf("first pass: the rest must converge (-want +got):\n%s", diff)
	}
	st := h.r.Stats()
	if st.Errors != 2 || st.Pending != 2 {
		t.Fatalf("stats after first pass: %+v", st)
	}
	if f.calls[OpAddDestination] != 2 {
		t.Fatalf("destinations of the failed service were tried: %v", f.calls)
	}

	// Backoff schedule 1s, 2s, 4s: passes before the due time do not try.
	tries := func() int { return f.calls[OpAddDestination] }
	steps := []struct {
		advance time.Duration
		tried   bool
		cmds    []string
	}{
		{0, false, nil},
		{999 * time.Millisecond, false, nil},
		{time.Millisecond, true, nil},         // 2nd failure, next in 2s
		{1500 * time.Millisecond, false, nil}, //
		{500 * time.Millisecond, true, nil},   // 3rd failure, next in 4s
		{3 * time.Second, false, nil},         //
		{time.Second, true, []string{"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.2:80 -m -w 1"}},
	}
	for i, s := range steps {
		h.clock.advance(s.advance)
		before := tries()
		cmds, _ := h.passErr()
		if got := tries() > before; got != s.tried {
			t.Fatalf("step %d: tried=%v, want %v", i, got, s.tried)
		}
		if diff := cmp.Diff(s.cmds, cmds); diff != "" {
			t.Fatalf("step %d (-want +got):\n%s", i, diff)
		}
	}
	st = h.r.Stats()
	// 3 failures of the destination, 4 of the service (at 0s, 1s, 3s, 7s).
	if st.Errors != 7 || st.Pending != 1 || st.Deferred == 0 || st.Ops[OpAddDestination] != 2 {
		t.Fatalf("final stats: %+v", st)
	}
}

func TestReconcilerAbsorbsRaces(t *testing.T) {
	vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 3))
	out := newBuffer()
	dry := NewDryRun(nil, out)
	raced := false
	// A human adds the destination (wrong weight) between our read and
	// our add: the add meets EEXIST and becomes an edit.
	f := newFaulty(dry, func(op OpKind, svc config.ServiceKey, d Destination) error {
		if op == OpAddDestination && !raced {
			raced = true
			return dry.AddDestination(context.Background(), svc, Destination{Addr: d.Addr, Port: d.Port, Weight: 1})
		}
		return nil
	})
	h := newHarnessOn(t, dry, out, f, configOf(vs))
	want := []string{
		"ipvsadm -A -t 198.18.0.1:80 -s wlc",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 1", // the human
		"ipvsadm -e -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 3", // us
	}
	if diff := cmp.Diff(want, h.pass()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if st := h.r.Stats(); st.Errors != 0 || st.Ops[OpUpdateDestination] != 1 {
		t.Fatalf("stats: %+v", st)
	}
}
