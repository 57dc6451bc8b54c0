package synprobe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// addIPv6 gives the director's end of rs's link 2001:2:0:N::1/64 and the
// real server 2001:2:0:N::2/64 (2001:2::/48 is the IPv6 benchmarking
// range, RFC 5180), without duplicate address detection, and returns the
// real server's address.
func addIPv6(tb testing.TB, rs *testnet.RealServer) netip.Addr {
	tb.Helper()
	n := rs.Director.As4()[2]
	dir := netip.MustParseAddr(fmt.Sprintf("2001:2:0:%x::1", n))
	srv := netip.MustParseAddr(fmt.Sprintf("2001:2:0:%x::2", n))
	add := func(link string, a netip.Addr) error {
		l, err := netlink.LinkByName(link)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(l, &netlink.Addr{
			IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(64, 128)},
			Flags: unix.IFA_F_NODAD,
		})
	}
	if err := add(rs.Link, dir); err != nil {
		tb.Fatalf("add %v to %s: %v", dir, rs.Link, err)
	}
	if err := rs.Do(func() error { return add("eth0", srv) }); err != nil {
		tb.Fatalf("add %v in %s: %v", srv, rs.Name, err)
	}
	return srv
}

// newTestProber builds a prober on the links of net, registered on a
// fresh pedantic registry, and closes it on cleanup.
func newTestProber(tb testing.TB, n *testnet.Net, cfg Config) (*Prober, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	cfg.Registerer = reg
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, rs := range n.RealServers {
		cfg.Interfaces = append(cfg.Interfaces, rs.Link)
	}
	p, err := New(cfg)
	if errors.Is(err, loader.ErrNotSupported) {
		testenv.SkipOrFail(tb, "eBPF receiver not available: "+err.Error())
	}
	if err != nil {
		tb.Fatalf("new prober: %v\n%s", err, loader.VerifierLog(err))
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("close prober: %v", err)
		}
	})
	return p, reg
}

// start runs p until the test ends and fails the test if Run fails.
func start(tb testing.TB, p *Prober) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			tb.Errorf("Run = %v, want context.Canceled", err)
		}
	}
	tb.Cleanup(stop)
	return stop
}

// tcpExt reads one TcpExt counter of /proc/net/netstat inside rs.
func tcpExt(tb testing.TB, rs *testnet.RealServer, name string) uint64 {
	tb.Helper()
	return procNetCounter(tb, rs.Run(tb, "cat", "/proc/net/netstat"), "TcpExt:", name)
}

// procNetCounter reads counter name from the lines of a /proc/net/snmp or
// /proc/net/netstat text that start with prefix ("Tcp:", "TcpExt:"): a
// header line of names, then one of values.
func procNetCounter(tb testing.TB, text, prefix, name string) uint64 {
	tb.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	var header []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != prefix {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, h := range header {
			if h == name && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					tb.Fatalf("%s %s: %v", prefix, name, err)
				}
				return v
			}
		}
	}
	tb.Fatalf("no %s %s counter", prefix, name)
	return 0
}
