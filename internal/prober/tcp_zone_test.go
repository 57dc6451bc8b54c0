package prober

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestTCPCheckUnknownZone: a TCP_CHECK whose IPv6 zone names no interface
// is built (the interface may appear later) and fails each check with the
// address error, retried per check rather than kept.
func TestTCPCheckUnknownZone(t *testing.T) {
	c := &config.Checker{Type: config.TCPCheck, ConnectIP: netip.MustParseAddr("fe80::1%nosuchlink0"), ConnectPort: 22,
		ConnectTimeout: config.DefaultConnectTimeout}
	ck, err := newTCPChecker(c, CheckerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ck.(*tcpChecker).zoneBad {
		t.Fatal("unknown zone taken as an address")
	}
	for range 2 {
		res := ck.Check(context.Background())
		if res.OK || res.Err == nil || !strings.Contains(res.Err.Error(), "connect") || !strings.Contains(res.Err.Error(), "nosuchlink0") {
			t.Fatalf("result %+v, want a failed connect naming the zone", res)
		}
	}
}
