package prober

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// dnsBlock is a DNS_CHECK block.
func dnsBlock(addr netip.AddrPort, timeout time.Duration, typ, name string) *config.Checker {
	c := checkerFor(config.DNSCheck, addr, timeout)
	c.DNS = &config.DNSOptions{Type: typ, Name: name}
	return c
}

// startDnsmasq runs Debian's dnsmasq in rs's namespace: authoritative
// for nothing, no upstream, example.test local, ok.example.test with an
// address.
func startDnsmasq(t testing.TB, rs *testnet.RealServer) *daemon {
	t.Helper()
	return startDaemon(t, rs, testenv.RequireProgram(t, "dnsmasq"),
		"--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--user=root", "--pid-file", "--bind-interfaces", "--listen-address="+rs.Addr.String(), "--port=53",
		"--local=/example.test/", "--address=/ok.example.test/198.18.255.1")
}

// TestLabDNS runs DNS_CHECK against a real dnsmasq and breaks it: wrong
// answer, stopped, stalled, black-holed; each fault is seen within the
// timeout and the check passes again once it is fixed.
func TestLabDNS(t *testing.T) {
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	top := t // daemons restarted in subtests outlive them
	dm := startDnsmasq(top, rs)
	const timeout = 500 * time.Millisecond
	ep := netip.AddrPortFrom(rs.Addr, 53)
	ok := mustChecker(t, dnsBlock(ep, timeout, "A", "ok.example.test"), CheckerOptions{})
	eventually(t, ok, true, 50, 100*time.Millisecond) // dnsmasq is up
	healthy := func(t *testing.T) {
		t.Helper()
		expect(t, ok, timeout, true, "query A ok.example.test; rcode 0; ok")
	}

	t.Run("healthy", healthy)
	t.Run("trailing dot", func(t *testing.T) {
		expect(t, mustChecker(t, dnsBlock(ep, timeout, "A", "ok.example.test."), CheckerOptions{}), timeout, true, "rcode 0; ok")
	})
	t.Run("wrong answer", func(t *testing.T) {
		res := expect(t, mustChecker(t, dnsBlock(ep, timeout, "A", "missing.example.test"), CheckerOptions{}), timeout, false, "rcode 3")
		if !errors.Is(res.Err, errDNSRcode) {
			t.Fatalf("err %v", res.Err)
		}
		// the default query (SOA of the root) has no upstream to go to here
		expect(t, mustChecker(t, dnsBlock(ep, timeout, "", ""), CheckerOptions{}), timeout, false, "query SOA .; rcode 5")
	})
	t.Run("stalled", func(t *testing.T) {
		dm.signalChild(t, syscall.SIGSTOP)
		res := expect(t, ok, timeout, false, "no answer")
		if res.Duration < timeout {
			t.Fatalf("failed after %v, before the timeout: %q", res.Duration, res.Message)
		}
		dm.signalChild(t, syscall.SIGCONT)
		healthy(t)
	})
	t.Run("black-holed", func(t *testing.T) {
		rs.BlackHole(t)
		expect(t, ok, timeout, false, "no answer")
		rs.Restore(t)
		healthy(t)
	})
	t.Run("stopped", func(t *testing.T) {
		dm.kill()
		// the real server answers with ICMP port unreachable: at once
		res := expect(t, ok, timeout, false, "read answer")
		if !errors.Is(res.Err, syscall.ECONNREFUSED) {
			t.Fatalf("err %v, want ECONNREFUSED from the ICMP error", res.Err)
		}
		dm = startDnsmasq(top, rs)
		eventually(t, ok, true, 50, 100*time.Millisecond)
		healthy(t)
	})
}

// TestDNSCheckerKey: the same query on the same endpoint is one check.
func TestDNSCheckerKey(t *testing.T) {
	ep := netip.MustParseAddrPort("198.18.1.2:53")
	a := mustChecker(t, dnsBlock(ep, time.Second, "A", "x.test"), CheckerOptions{})
	b := mustChecker(t, dnsBlock(ep, time.Second, "A", "x.test"), CheckerOptions{})
	c := mustChecker(t, dnsBlock(ep, time.Second, "MX", "x.test"), CheckerOptions{})
	d := mustChecker(t, dnsBlock(ep, time.Second, "", ""), CheckerOptions{})
	if a.Key() != b.Key() || a.Key() == c.Key() {
		t.Fatalf("keys %q %q %q", a.Key(), b.Key(), c.Key())
	}
	if !strings.Contains(d.String(), "SOA .") {
		t.Fatalf("default query %q, want SOA .", d)
	}
	if _, err := NewChecker(dnsBlock(ep, time.Second, "A", "a..b"), CheckerOptions{}); err == nil {
		t.Fatal("empty label accepted")
	}
}
