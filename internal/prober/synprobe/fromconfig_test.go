package synprobe

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

func TestTargetsFromConfig(t *testing.T) {
	a := netip.MustParseAddr
	check := func(typ config.CheckerType, ip string, port uint16) *config.Checker {
		c := &config.Checker{Type: typ, ConnectPort: port, Pos: config.Pos{File: "k.conf", Line: int(port)}}
		if ip != "" {
			c.ConnectIP = a(ip)
		}
		return c
	}
	smtp := check(config.SMTPCheck, "198.18.1.8", 25)
	smtp.SMTP = &config.SMTPOptions{Hosts: []*config.Checker{check(config.SMTPCheck, "198.18.1.9", 2525)}}
	hostsOnly := check(config.SMTPCheck, "198.18.1.8", 26) // only its host is checked
	hostsOnly.SMTP = &config.SMTPOptions{HostsOnly: true, Hosts: []*config.Checker{check(config.SMTPCheck, "198.18.1.10", 25)}}
	bound := check(config.TCPCheck, "198.18.1.5", 80)
	bound.BindTo = a("198.18.0.9")
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{
		{Addr: a("198.18.100.1"), Port: 80, Protocol: config.TCP, RealServers: []*config.RealServer{
			{Addr: a("198.18.1.2"), Port: 80, Checkers: []*config.Checker{
				check(config.TCPCheck, "198.18.1.2", 80),
				check(config.HTTPGet, "198.18.1.2", 80), // same endpoint: one target
				check(config.MiscCheck, "", 0),
			}},
			{Addr: a("198.18.1.3"), Port: 80, Checkers: []*config.Checker{check(config.SSLGet, "198.18.1.3", 443)}},
			{Addr: a("198.18.1.4"), Port: 80},
			{Addr: a("198.18.1.5"), Port: 80, Checkers: []*config.Checker{bound}},
		}},
		{Addr: a("198.18.100.2"), Port: 80, Protocol: config.TCP, RealServers: []*config.RealServer{
			{Addr: a("198.18.1.2"), Port: 80, Checkers: []*config.Checker{check(config.TCPCheck, "198.18.1.2", 80)}},
		}},
		{Addr: a("198.18.100.4"), Port: 25, Protocol: config.TCP, RealServers: []*config.RealServer{
			{Addr: a("198.18.1.8"), Port: 25, Checkers: []*config.Checker{smtp, hostsOnly,
				check(config.PingCheck, "198.18.1.8", 25), check(config.DNSCheck, "198.18.1.8", 53)}},
		}},
		{Addr: a("198.18.100.3"), Port: 53, Protocol: config.UDP, RealServers: []*config.RealServer{
			{Addr: a("198.18.1.6"), Port: 53, Checkers: []*config.Checker{check(config.TCPCheck, "198.18.1.6", 53)}},
		}},
		{FWMark: 7, Family: "inet", Protocol: config.TCP, RealServers: []*config.RealServer{
			{Addr: a("198.18.1.7"), Checkers: []*config.Checker{check(config.TCPCheck, "198.18.1.7", 0)}},
		}},
	}}
	targets, skipped := TargetsFromConfig(cfg)
	got := map[string]int{}
	for _, tg := range targets {
		got[tg.Addr.String()] = len(tg.RealServers)
	}
	want := map[string]int{"198.18.1.2:80": 2, "198.18.1.3:443": 1, "198.18.1.8:25": 1, "198.18.1.9:2525": 1, "198.18.1.10:25": 1}
	if len(got) != len(want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("target %s serves %d real servers, want %d", k, got[k], n)
		}
	}
	reasons := []string{"MISC_CHECK is not a TCP check (no network endpoint)", "no checker", "bindto", "UDP service", "no address or port",
		"PING_CHECK is not a TCP check (ICMP", "DNS_CHECK is not a TCP check (UDP"}
	if len(skipped) != len(reasons) {
		t.Errorf("skipped %+v, want %d", skipped, len(reasons))
	}
	for _, r := range reasons {
		found := false
		for _, s := range skipped {
			found = found || strings.Contains(s.Reason, r)
		}
		if !found {
			t.Errorf("no skip with reason %q in %+v", r, skipped)
		}
	}
}
