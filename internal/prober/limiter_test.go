package prober

import (
	"testing"
	"time"
)

func TestConcurrencyLimit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const timeout = time.Second
	type sample struct {
		start   time.Duration // from t0
		elapsed time.Duration
		healthy bool
	}
	tests := []struct {
		name                    string
		floor, ceiling, initial int
		busy                    int // slots held when each sample ends (0: the whole limit)
		samples                 []sample
		want                    int
	}{
		{"a slow healthy attempt cuts to three quarters", 4, 100, 16, 0,
			[]sample{{0, 600 * time.Millisecond, true}}, 12},
		{"a slow attempt of a check already down does not cut", 4, 100, 16, 0,
			[]sample{{0, time.Second, false}}, 16},
		{"one cut per generation: attempts started before the cut do not cut again", 4, 100, 16, 0,
			[]sample{{0, 600 * time.Millisecond, true}, {100 * time.Millisecond, 900 * time.Millisecond, true}}, 12},
		{"an attempt started after the cut cuts again", 4, 100, 16, 0,
			[]sample{{0, 600 * time.Millisecond, true}, {700 * time.Millisecond, 600 * time.Millisecond, true}}, 9},
		{"never below the floor", 4, 100, 5, 0,
			[]sample{{0, 600 * time.Millisecond, true}, {700 * time.Millisecond, 600 * time.Millisecond, true}}, 4},
		{"fast attempts with the limit in use grow it by one each", 4, 100, 16, 0,
			[]sample{{0, 10 * time.Millisecond, true}, {0, 10 * time.Millisecond, false}, {0, 10 * time.Millisecond, true}}, 19},
		{"never above the ceiling", 4, 17, 16, 0,
			[]sample{{0, 10 * time.Millisecond, true}, {0, 10 * time.Millisecond, true}}, 17},
		{"fast attempts with most of the limit idle do not grow it", 4, 100, 16, 7,
			[]sample{{0, 10 * time.Millisecond, true}, {0, 10 * time.Millisecond, true}}, 16},
		{"attempts between a quarter and a half of the timeout grow it by 1/limit", 4, 100, 16, 0,
			repeat(sample{0, 300 * time.Millisecond, true}, 17), 17},
		{"a cut then growth", 4, 100, 16, 0,
			[]sample{{0, 800 * time.Millisecond, true}, {time.Second, 10 * time.Millisecond, true}}, 13},
		{"static: floor equals ceiling", 8, 8, 8, 0,
			[]sample{{0, 900 * time.Millisecond, true}, {time.Second, 10 * time.Millisecond, true}}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newConcurrencyLimit(tt.floor, tt.ceiling, tt.initial)
			for _, s := range tt.samples {
				busy := tt.busy
				if busy == 0 {
					busy = l.current()
				}
				l.inflight = busy
				start := t0.Add(s.start)
				l.done(start, start.Add(s.elapsed), timeout, s.healthy)
			}
			if got := l.current(); got != tt.want {
				t.Errorf("limit %d, want %d", got, tt.want)
			}
		})
	}
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestConcurrencyLimitAcquire(t *testing.T) {
	l := newConcurrencyLimit(1, 10, 3)
	for i := range 3 {
		if !l.tryAcquire() {
			t.Fatalf("slot %d refused under a limit of 3", i+1)
		}
	}
	if l.tryAcquire() {
		t.Fatal("a fourth slot granted under a limit of 3")
	}
	select {
	case <-l.freed:
		t.Fatal("freed signalled before any slot was given back")
	default:
	}
	l.cancel()
	select {
	case <-l.freed:
	default:
		t.Fatal("no freed signal after a slot was given back")
	}
	if !l.tryAcquire() {
		t.Fatal("the slot given back was not granted")
	}
}
