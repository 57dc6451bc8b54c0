package prober

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// pingBlock is a PING_CHECK block.
func pingBlock(addr netip.Addr, timeout time.Duration) *config.Checker {
	return &config.Checker{Pos: config.Pos{File: "t.conf", Line: 9}, Type: config.PingCheck, ConnectIP: addr, ConnectTimeout: timeout}
}

// setPingGroupRange sets net.ipv4.ping_group_range of this process's
// namespace (the test's own) and restores it on cleanup.
func setPingGroupRange(t testing.TB, v string) {
	t.Helper()
	const p = "/proc/sys/net/ipv4/ping_group_range"
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(p, old, 0o644) })
}

// addV6 gives the director and rs a ULA /64 on their veth pair.
func addV6(t *testing.T, rs *testnet.RealServer, n int) (director, real netip.Addr) {
	t.Helper()
	director = netip.MustParseAddr(fmt.Sprintf("fd00:198:18:%x::1", n))
	real = netip.MustParseAddr(fmt.Sprintf("fd00:198:18:%x::2", n))
	testenv.RequireProgram(t, "ip")
	rs.Run(t, "ip", "-6", "addr", "add", real.String()+"/64", "dev", "eth0", "nodad")
	if out, err := execIP("-6", "addr", "add", director.String()+"/64", "dev", rs.Link, "nodad"); err != nil {
		t.Fatalf("ip -6 addr add: %v: %s", err, out)
	}
	return director, real
}

// TestLabPing sends real ICMP and ICMPv6 echo requests to a real-server
// namespace through a ping socket and through the raw-socket fallback,
// and sees a black-holed server and an absent address fail.
func TestLabPing(t *testing.T) {
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	_, v6 := addV6(t, rs, 1)
	const timeout = 400 * time.Millisecond
	absent := netip.AddrFrom4([4]byte{rs.Addr.As4()[0], rs.Addr.As4()[1], rs.Addr.As4()[2], 200})
	for _, mode := range []struct {
		name, groups string
		raw          bool
	}{
		{"ping socket", "0 2147483647", false},
		{"raw socket", "1 0", true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			setPingGroupRange(t, mode.groups)
			for _, addr := range []netip.Addr{rs.Addr, v6} {
				ck := mustChecker(t, pingBlock(addr, timeout), CheckerOptions{})
				if f, raw, err := openPing(addr); err != nil || raw != mode.raw {
					t.Fatalf("openPing(%v): raw %v, %v; want raw %v", addr, raw, err, mode.raw)
				} else {
					f.Close()
				}
				eventually(t, ck, true, 20, 100*time.Millisecond) // IPv6 neighbour discovery
				expect(t, ck, timeout, true, "echo reply; ok")
				rs.BlackHole(t)
				res := expect(t, ck, timeout, false, "no echo reply")
				if res.Duration < timeout {
					t.Fatalf("failed after %v, before the timeout", res.Duration)
				}
				rs.Restore(t)
				expect(t, ck, timeout, true, "echo reply; ok")
			}
			expect(t, mustChecker(t, pingBlock(absent, timeout), CheckerOptions{}), timeout, false, "PING_CHECK "+absent.String())
		})
	}
	if k1, k2 := mustChecker(t, pingBlock(rs.Addr, timeout), CheckerOptions{}).Key(), mustChecker(t, pingBlock(v6, timeout), CheckerOptions{}).Key(); k1 == k2 || !strings.Contains(k2, v6.String()) {
		t.Fatalf("keys %q %q", k1, k2)
	}
}

// TestPingLinkLocalZone: a link-local target is pinged through bind_if.
func TestPingLinkLocalZone(t *testing.T) {
	c := pingBlock(netip.MustParseAddr("fe80::1"), time.Second)
	c.BindIf = "eth0"
	if s := mustChecker(t, c, CheckerOptions{}).String(); s != "PING_CHECK fe80::1%eth0" {
		t.Fatalf("%q", s)
	}
}
