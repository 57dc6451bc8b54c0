package prober

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

func TestParseCLong(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0\n", 0, true}, {"5\n", 5, true}, {"  -12 apples", -12, true}, {"+7", 7, true},
		{"0x1f", 31, true}, {"0X1F\n", 31, true}, {"010", 8, true}, {"09", 0, true}, {"0x", 0, true},
		{"", 0, true}, {"abc", 0, true}, {"2147483648", 2147483648, true}, {"2147483649", 2147483649, false},
		{"-2147483648", -2147483648, true}, {"-2147483649", -2147483649, false}, {"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseCLong(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseCLong(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTrackFileStatus(t *testing.T) {
	tests := []struct {
		value   int64
		weight  int
		reverse bool
		offset  int
		fault   bool
	}{
		{0, 0, false, 0, false}, {1, 0, false, 0, true}, {-3, 0, false, 0, true},
		{0, 0, true, 0, true}, {1, 0, true, 0, false},
		{5, 2, false, 10, false}, {5, 2, true, -10, false}, {-5, 1, false, -5, false},
		{math.MinInt32, 1, false, 0, true}, {math.MinInt32 + 1, 1, false, math.MinInt32 + 1, false},
		{1 << 30, 254, false, math.MaxInt32, false}, {-(1 << 30), 254, false, 0, true},
	}
	for _, tt := range tests {
		off, fault := trackFileStatus(tt.value, tt.weight, tt.reverse)
		if off != tt.offset || fault != tt.fault {
			t.Errorf("trackFileStatus(%d, %d, %v) = %d, %v; want %d, %v", tt.value, tt.weight, tt.reverse, off, fault, tt.offset, tt.fault)
		}
	}
}

func TestFileCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maint")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	newCk := func(weight int, reverse bool) Checker {
		return mustChecker(t, &config.Checker{Pos: config.Pos{File: "t.conf", Line: 3}, Type: config.FileCheck,
			File: &config.FileOptions{TrackFile: "maint", Path: path, Weight: weight, Reverse: reverse}}, CheckerOptions{})
	}
	zero, weighted := newCk(0, false), newCk(3, true)
	ctx := context.Background()

	// missing file: 0
	if res := zero.Check(ctx); !res.OK || res.Weight.Kind != WeightNone {
		t.Fatalf("missing file, weight 0: %+v", res)
	}
	if res := weighted.Check(ctx); !res.OK || res.Weight != (WeightChange{Kind: WeightOffset, Value: 0}) {
		t.Fatalf("missing file, weight 3 reverse: %+v", res)
	}
	write("2\n")
	if res := zero.Check(ctx); res.OK || !errors.Is(res.Err, errFileFault) {
		t.Fatalf("2, weight 0: %+v", res)
	}
	if res := weighted.Check(ctx); !res.OK || res.Weight != (WeightChange{Kind: WeightOffset, Value: -6}) {
		t.Fatalf("2, weight 3 reverse: %+v", res)
	}
	write("99999999999") // out of range: the previous value stands
	if res := weighted.Check(ctx); !res.OK || res.Weight.Value != -6 {
		t.Fatalf("invalid number: %+v", res)
	}
	write("0")
	if res := zero.Check(ctx); !res.OK {
		t.Fatalf("0, weight 0: %+v", res)
	}
	if zero.Key() == weighted.Key() {
		t.Fatal("different weights share a key")
	}
}

func FuzzParseCLong(f *testing.F) {
	for _, s := range []string{"0", "42\n", " -7x", "0x1F", "010", "99999999999999999999", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parseCLong(s)
		if ok && (v < math.MinInt32 || v > math.MaxInt32+1) {
			t.Fatalf("%q: %d accepted out of range", s, v)
		}
		if n, err := strconv.ParseInt(s, 10, 32); err == nil && len(s) > 0 && s[0] != '0' && s[0] != '+' && s[0] != '-' {
			if v != n || !ok {
				t.Fatalf("%q: %d %v, strconv says %d", s, v, ok, n)
			}
		}
	})
}
