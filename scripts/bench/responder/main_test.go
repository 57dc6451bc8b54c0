package main

import (
	"net/netip"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

func TestParseRange(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.2")
	tests := []struct {
		in   string
		want testnet.ResponderRange
		ok   bool
	}{
		{"198.18.0.2:20008-29999", testnet.ResponderRange{Addr: a, First: 20008, Last: 29999}, true},
		{"198.18.0.2:80", testnet.ResponderRange{Addr: a, First: 80, Last: 80}, true},
		{"198.18.0.2:0-65535", testnet.ResponderRange{Addr: a, First: 0, Last: 65535}, true},
		{"198.18.0.2", testnet.ResponderRange{}, false},
		{"198.18.0.2:2-1", testnet.ResponderRange{}, false},
		{"198.18.0.2:1-65536", testnet.ResponderRange{}, false},
		{"::1:80", testnet.ResponderRange{}, false},
		{"host:80", testnet.ResponderRange{}, false},
		{"198.18.0.2:-5", testnet.ResponderRange{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseRange(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseRange(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseRange: any input is a range with an IPv4 address and
// first <= last, or an error; never a panic.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"198.18.0.2:20008-29999", "198.18.0.2:80", "1.2.3.4:5-", ":", "a:b-c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRange(s)
		if err != nil {
			return
		}
		if !r.Addr.Is4() || r.First > r.Last {
			t.Fatalf("parseRange(%q) = %+v: not IPv4 or first > last", s, r)
		}
	})
}
