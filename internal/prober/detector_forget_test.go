package prober

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// forgetConf is a keepalived.conf with TCP_CHECKs on the real servers
// 198.18.1.2 .. 198.18.1.(1+n) of one virtual server.
func forgetConf(t *testing.T, n int) *config.Config {
	t.Helper()
	src := "virtual_server 198.18.250.1 80 {\n delay_loop 60\n lb_kind NAT\n protocol TCP\n"
	for i := range n {
		src += fmt.Sprintf(" real_server 198.18.1.%d 80 {\n  TCP_CHECK {\n   connect_timeout 1\n  }\n }\n", i+2)
	}
	src += "}\n"
	cfg, err := config.Parse("forget.conf", []byte(src), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// forgetEP is the endpoint of forgetConf's real server i (from 0).
func forgetEP(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 2)}), 80)
}

// fastDetectorAt returns a fast-mode detector on a scheduler for cfg,
// its clock reading *now.
func fastDetectorAt(t *testing.T, cfg *config.Config, now *time.Time) *Detector {
	t.Helper()
	_, d := newTestDetector(t, cfg, SchedulerOptions{}, DetectorOptions{Mode: DetectFast, Now: func() time.Time { return *now }})
	return d
}

// TestDetectorForgetsRemovedServers: a reload that removes a real server
// drops its endpoint and damping state (and its share of the silent
// count) and keeps the others'.
func TestDetectorForgetsRemovedServers(t *testing.T) {
	cfg := forgetConf(t, 3)
	s, err := NewScheduler(cfg, SchedulerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDetector(s, DetectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []config.RealServerKey
	for i := range 3 {
		a := netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("198.18.1.%d", i+2)), 80)
		vs := cfg.VirtualServers[0]
		keys = append(keys, vs.RealServers[i].Key(vs))
		d.Observe(Evidence{Target: a, Kind: EvidenceSilence, Count: d.p.missThreshold})
		d.transition(Transition{Key: keys[i], Up: true})
	}
	if len(d.eps) != 3 || len(d.damp) != 3 || d.silent != 3 {
		t.Fatalf("before the reload: %d endpoints, %d damped, %d silent; want 3 each", len(d.eps), len(d.damp), d.silent)
	}
	if err := s.Update(forgetConf(t, 1)); err != nil {
		t.Fatal(err)
	}
	if len(d.eps) != 1 || d.silent != 1 {
		t.Errorf("after the reload: %d endpoints, %d silent; want 1 each", len(d.eps), d.silent)
	}
	if _, ok := d.damp[keys[0]]; !ok || len(d.damp) != 1 {
		t.Errorf("after the reload damping is kept for %v, want only %v", d.damp, keys[0])
	}
}
