package main

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/vishvananda/netlink"
)

// tcxPrograms counts the TCX programs on both hooks of the named link.
func tcxPrograms(t *testing.T, name string) int {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		if q, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: at}); err == nil {
			n += len(q.Programs)
		}
	}
	return n
}

// TestRunPassive runs `lvsprobe run` with a client namespace reaching the
// real server through the director: the passive programs attach to the
// link that routes to the real server (and only it), see the refusals of
// a listener that went away, and leave nothing behind.
func TestRunPassive(t *testing.T) {
	n := testnet.New(t, testnet.Options{RealServers: 2})
	n.Route(t)
	client, rs := n.RealServers[0], n.RealServers[1]
	l := rs.Listen(t, "tcp", ":8080")
	go acceptAndReset(l)
	conf := strings.NewReplacer("ADDR", rs.Addr.String(), "PORT_A", "8080", "PORT_B", "8081").Replace(synConf)
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := runInProcess(t, slog.LevelDebug, 60*time.Second, "-f", path, "--ipvs=dry-run", "--syn-probe=false", "--passive-interval=50ms",
		"--metrics-listen=", "--control-socket=")
	must := p.must
	// Passive observation says once, at the start, whether it runs (after
	// a warning if only part of it loaded).
	on := must(`msg="passive observation`)
	if strings.Contains(on, `msg="passive observation incomplete"`) {
		on = must(`msg="passive observation`)
	}
	if !strings.Contains(on, `msg="passive observation on"`) {
		testenv.SkipOrFail(t, "passive observation unavailable: "+on)
	}
	if !strings.Contains(on, "links=["+rs.Link+"]") || !strings.Contains(on, "real_servers=2") || !strings.Contains(on, "tracepoints=true") {
		t.Errorf("want the real server's link only, 2 real servers, tracepoints: %s", on)
	}
	if got := tcxPrograms(t, rs.Link) + tcxPrograms(t, client.Link); got != 2 && kernelHasTCX(t) {
		t.Errorf("%d TCX programs on the links, want 2 (ingress and egress of %s)", got, rs.Link)
	}
	l.Close()
	var err error
	client.Do(func() error {
		_, err = net.DialTimeout("tcp", netip.AddrPortFrom(rs.Addr, 8080).String(), 5*time.Second)
		return nil
	})
	if err == nil {
		t.Fatal("dial to a closed listener succeeded")
	}
	must(`msg="passive event"`, "real_server="+rs.Addr.String()+":8080", "kind=refused")
	p.stop()
	if got := tcxPrograms(t, rs.Link); got != 0 {
		t.Errorf("%d TCX programs left after exit", got)
	}
}

// kernelHasTCX reports whether TCX links work here (6.6+).
func kernelHasTCX(t *testing.T) bool {
	t.Helper()
	_, err := link.QueryPrograms(link.QueryOptions{Target: 1, Attach: ebpf.AttachTCXIngress})
	return err == nil
}

func TestPassiveFlagsAndTargets(t *testing.T) {
	for _, tt := range []struct {
		f  passiveFlags
		ok bool
	}{
		{passiveFlags{mode: "auto", interval: time.Second}, true},
		{passiveFlags{mode: "off", interval: time.Second}, true},
		{passiveFlags{mode: "on", interval: time.Second}, false},
		{passiveFlags{mode: "auto"}, false},
		{passiveFlags{mode: "auto", interval: time.Second, sample: 1}, true},
		{passiveFlags{mode: "auto", interval: time.Second, sample: 8}, true},
		{passiveFlags{mode: "auto", interval: time.Second, sample: 1 << 16}, true},
		{passiveFlags{mode: "auto", interval: time.Second, sample: 3}, false},
		{passiveFlags{mode: "auto", interval: time.Second, sample: 1 << 17}, false},
		{passiveFlags{mode: "auto", interval: time.Second, sample: -8}, false},
	} {
		if err := tt.f.check(); (err == nil) != tt.ok {
			t.Errorf("check(%+v) = %v", tt.f, err)
		}
	}
	conf := strings.NewReplacer("ADDR", "198.18.9.2", "PORT_A", "8080", "PORT_B", "8081").Replace(synConf)
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := passiveTargets(cfg)
	if len(got) != 2 || got[0] != netip.MustParseAddrPort("198.18.9.2:8080") || got[1] != netip.MustParseAddrPort("198.18.9.2:8081") {
		t.Errorf("targets = %v, want the two TCP real servers (UDP skipped)", got)
	}
}
