package loader

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfigHZ(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"CONFIG_HZ_250=y\nCONFIG_HZ=250\n", 250},
		{"# CONFIG_HZ_100 is not set\nCONFIG_HZ=1000", 1000},
		{"CONFIG_HZ_PERIODIC=y\n", 0},
		{"CONFIG_HZ=abc\n", 0},
		{"CONFIG_HZ=0\n", 0},
		{"CONFIG_HZ=99999\n", 0},
		{"", 0},
	} {
		if got := parseConfigHZ(strings.NewReader(tt.in)); got != tt.want {
			t.Errorf("parseConfigHZ(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func FuzzParseConfigHZ(f *testing.F) {
	f.Add("CONFIG_HZ=250\n")
	f.Add("CONFIG_HZ=\n")
	f.Fuzz(func(t *testing.T, s string) {
		if hz := parseConfigHZ(strings.NewReader(s)); hz < 0 || hz > 10000 {
			t.Errorf("parseConfigHZ(%q) = %d", s, hz)
		}
	})
}

func TestGapJiffies(t *testing.T) {
	for _, tt := range []struct {
		gap  time.Duration
		hz   int
		want uint32
	}{
		{100 * time.Millisecond, 250, 24},
		{100 * time.Millisecond, 1000, 99},
		{100 * time.Millisecond, 100, 9},
		{5 * time.Millisecond, 250, 0}, // one tick: jiffies cannot tell
		{8 * time.Millisecond, 250, 1},
		{time.Nanosecond, 1000, 0},
		{time.Second, 0, 0}, // HZ unknown
	} {
		if got := gapJiffies(tt.gap, tt.hz); got != tt.want {
			t.Errorf("gapJiffies(%v, %d) = %d, want %d", tt.gap, tt.hz, got, tt.want)
		}
	}
}
