package ipvs

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestPassYieldsPerService: a full pass yields its P after reading each
// service and after comparing each one, so that on one P other goroutines
// (the check scheduler's dispatch loop) run within the pass, not after it.
func TestPassYieldsPerService(t *testing.T) {
	for _, tc := range []struct {
		name      string
		services  int
		wantFirst int // yields of the first pass: apply only (nothing to read yet)
		wantNext  int // a converged resync: read and compare
	}{
		{"one service", 1, 1, 2},
		{"ten services", 10, 10, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReconciler(NewDryRun(nil, nil), benchConfig(tc.services, 50, false), ReconcilerOptions{})
			var yields int
			r.yield = func() { yields++ }
			ctx := context.Background()
			if err := r.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			if yields != tc.wantFirst {
				t.Errorf("first pass yielded %d times, want %d (one per service written)", yields, tc.wantFirst)
			}
			yields = 0
			if err := r.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			if yields != tc.wantNext {
				t.Errorf("resync yielded %d times, want %d (one per service read, one per service compared)", yields, tc.wantNext)
			}
		})
	}
}

// TestPassLetsOthersRunOnOneP: with GOMAXPROCS=1, a goroutine made
// runnable just before a resync runs before the pass returns.
func TestPassLetsOthersRunOnOneP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	r := NewReconciler(NewDryRun(nil, nil), benchConfig(4, 100, false), ReconcilerOptions{})
	ctx := context.Background()
	if err := r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	var inPass, ranDuring atomic.Bool
	start, done := make(chan struct{}), make(chan struct{})
	go func() {
		<-start
		ranDuring.Store(inPass.Load())
		close(done)
	}()
	inPass.Store(true)
	close(start) // the goroutine is runnable; this one keeps the only P
	err := r.Reconcile(ctx)
	inPass.Store(false)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if !ranDuring.Load() {
		t.Error("a runnable goroutine waited for the whole resync pass on one P")
	}
}
