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
				l.sample(start, start.Add(s.elapsed), timeout, s.healthy)
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
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newConcurrencyLimit(1, 10, 3)
	var slots []int64
	for i := range 3 {
		slot, ok := l.tryAcquire(now)
		if !ok {
			t.Fatalf("slot %d refused under a limit of 3", i+1)
		}
		slots = append(slots, slot)
	}
	if _, ok := l.tryAcquire(now); ok {
		t.Fatal("a fourth slot granted under a limit of 3")
	}
	select {
	case <-l.freed:
		t.Fatal("freed signalled before any slot was given back")
	default:
	}
	l.release(slots[0], 0, now)
	select {
	case <-l.freed:
	default:
		t.Fatal("no freed signal after a slot was given back")
	}
	if _, ok := l.tryAcquire(now); !ok {
		t.Fatal("the slot given back was not granted")
	}
	if got := l.inFlight(); got != 3 {
		t.Errorf("in flight %d, want 3", got)
	}
}

// TestConcurrencyLimitPark checks that attempts running past parkAfter
// stop counting against the limit unless the director is starved, and
// that slow attempts cut the limit only when it is.
func TestConcurrencyLimitPark(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const timeout = time.Second
	tests := []struct {
		name       string
		prompt     int           // attempts of healthy checks ending promptly in the second before t0
		slow       int           // and slowly (parkAfter or more)
		lateLaunch bool          // an attempt's goroutine waited launchStarved to run, just before t0
		later      time.Duration // when a fourth attempt asks, after three filled the limit of 3 at t0
		wantGrant  bool
		wantParked int // in flight past parkAfter when the fourth asks
		wantLimit  int // after a slow attempt of a healthy check started after t0 ends
	}{
		{"well fed: an attempt past parkAfter holds no slot", 64, 0, false, parkAfter, true, 3, 3},
		{"well fed: an attempt younger than parkAfter still counts", 64, 0, false, parkAfter - 2*parkBucket, false, 0, 3},
		{"nothing ended yet: not starved", 0, 0, false, parkAfter, true, 3, 2},
		{"a few slow attempts among many are the network's", 95, 5, false, parkAfter, true, 3, 3},
		{"starved: a fifth of attempts slow, every attempt counts however old", 80, 20, false, 5 * parkAfter, false, 3, 2},
		{"starved: a goroutine waited to run", 64, 0, true, 5 * parkAfter, false, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newConcurrencyLimit(1, 3, 3)
			before := t0.Add(-time.Second + time.Millisecond)
			for range tt.prompt {
				l.sample(before, before.Add(time.Millisecond), timeout, true)
			}
			for range tt.slow {
				l.sample(before, before.Add(parkAfter), timeout, true)
			}
			var slots []int64
			if tt.lateLaunch {
				slot, _ := l.tryAcquire(t0.Add(-launchStarved))
				l.release(slot, launchStarved, t0)
			}
			for range 3 {
				slot, ok := l.tryAcquire(t0)
				if !ok {
					t.Fatal("refused under the limit")
				}
				slots = append(slots, slot)
			}
			slot, ok := l.tryAcquire(t0.Add(tt.later))
			if ok != tt.wantGrant {
				t.Fatalf("fourth attempt granted %v, want %v", ok, tt.wantGrant)
			}
			if l.parked != tt.wantParked {
				t.Errorf("parked %d, want %d", l.parked, tt.wantParked)
			}
			if ok {
				slots = append(slots, slot)
			}
			for _, s := range slots {
				l.release(s, 0, t0.Add(tt.later))
			}
			if l.inflight != 0 || l.parked != 0 {
				t.Errorf("after every release: in flight %d, parked %d, want 0 and 0", l.inflight, l.parked)
			}
			end := t0.Add(tt.later)
			l.sample(end.Add(-timeout), end, timeout, true)
			if got := l.current(); got != tt.wantLimit {
				t.Errorf("limit after a slow healthy attempt %d, want %d", got, tt.wantLimit)
			}
		})
	}
}

// FuzzConcurrencyLimit drives a limit with acquires, releases and samples
// at advancing times and checks its accounting: every slot given back
// once, nothing counted twice, the parked never more than those in flight.
func FuzzConcurrencyLimit(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 2, 3, 200, 0, 1, 2})
	f.Add([]byte{0, 10, 0, 10, 0, 10, 0, 250, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		l := newConcurrencyLimit(1, 8, 2)
		var held []int64
		for i, op := range ops {
			now = now.Add(time.Duration(op>>2) * 5 * time.Millisecond)
			switch op & 3 {
			case 0, 3:
				if slot, ok := l.tryAcquire(now); ok {
					held = append(held, slot)
				}
			case 1:
				if len(held) > 0 {
					k := i % len(held)
					l.release(held[k], time.Duration(op)*time.Millisecond, now)
					held = append(held[:k], held[k+1:]...)
				}
			case 2:
				l.sample(now.Add(-time.Duration(op)*time.Millisecond), now, time.Second, op&4 == 0)
			}
			l.mu.Lock()
			inflight, parked, limit := l.inflight, l.parked, l.limit
			l.mu.Unlock()
			if inflight != len(held) || parked < 0 || parked > inflight {
				t.Fatalf("op %d: in flight %d (held %d), parked %d", i, inflight, len(held), parked)
			}
			if limit < 1 || limit > 8 {
				t.Fatalf("op %d: limit %v outside [1, 8]", i, limit)
			}
		}
	})
}
