package main

import (
	"testing"
	"time"
)

// TestWallOf: a kernel (CLOCK_MONOTONIC) stamp becomes the wall-clock time
// it stands for; an unknown or impossible stamp dates the evidence now.
func TestWallOf(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	const kn = 5_000_000_000
	tests := []struct {
		name string
		k    uint64
		want time.Time
	}{
		{"3 ms before now", kn - 3_000_000, now.Add(-3 * time.Millisecond)},
		{"now", kn, now},
		{"unknown", 0, now},
		{"from the future", kn + 1, now},
	}
	for _, tc := range tests {
		if got := wallOf(tc.k, now, kn); !got.Equal(tc.want) {
			t.Errorf("%s: wallOf(%d) = %v, want %v", tc.name, tc.k, got, tc.want)
		}
	}
}
