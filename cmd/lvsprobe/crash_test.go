package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// tcEgress returns the TCX programs and BPF tc filters on the egress of
// the named link.
func tcEgress(t *testing.T, name string) (tcx, filters int) {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXEgress}); err == nil {
		tcx = len(q.Programs)
	}
	if fs, err := netlink.FilterList(l, netlink.HANDLE_MIN_EGRESS); err == nil {
		for _, f := range fs {
			if _, ok := f.(*netlink.BpfFilter); ok {
				filters++
			}
		}
	}
	return tcx, filters
}

// startKillable starts `lvsprobe run` (a real process, SYN prober and
// passive observer on) on conf and waits until both eBPF parts run.
func startKillable(t *testing.T, conf string) *daemon {
	t.Helper()
	d := newDaemon(t, "")
	d.start(t, daemonCmd(t, context.Background(), "run", "-f", conf, "--ipvs=dry-run", "--syn-probe-interval=20ms",
		"--metrics-listen=", "--control-socket="+d.socket), false)
	waitFor(t, 30*time.Second, "SYN probes and passive observation on", func() (bool, string) {
		d.alive(t)
		s := d.stderr.String()
		return strings.Contains(s, "SYN probes on") && strings.Contains(s, "passive observation on"), "not yet"
	})
	if !strings.Contains(d.stderr.String(), "receiver=ebpf") {
		testenv.SkipOrFail(t, "the eBPF SYN receiver is not available here")
	}
	return d
}

// TestKilledDaemonLeavesTrafficFlowing kills `lvsprobe run` with SIGKILL
// while its SYN receiver and passive programs are attached to the link
// of a real server, then shows that clients still reach the real server
// through that link (200 HTTP requests on fresh connections, all
// answered), that no program is left attached where TCX is used (its
// links go with the process; clsact filters, on older kernels, are
// removed by the next start: TestPassiveAttachDetach, and every program
// passes every packet), and that the next start comes up on the
// leftovers (the reserved source ports a killed prober leaves are
// adopted) and its clean stop leaves the host as it was before the
// first start.
func TestKilledDaemonLeavesTrafficFlowing(t *testing.T) {
	testenv.RequireRoot(t)
	n := testnet.New(t, testnet.Options{})
	rs := n.RealServers[0]
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
	go func() { _ = srv.Serve(rs.Listen(t, "tcp", ":8080")) }()
	t.Cleanup(func() { _ = srv.Close() })
	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, capsConf, fmt.Sprintf(capsRS, rs.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	resvBefore, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports")
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s:8080/", rs.Addr)
	get := func() error {
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && (resp.StatusCode != 200 || string(b) != "ok") {
			err = fmt.Errorf("answer %s %q", resp.Status, b)
		}
		return err
	}

	d := startKillable(t, conf)
	in, inF := tcIngress(t, rs.Link)
	out, outF := tcEgress(t, rs.Link)
	tcx := in > 0
	if in+inF != 2 {
		t.Fatalf("while running: %d programs on %s ingress, want the SYN receiver and the passive one", in+inF, rs.Link)
	}
	if out+outF != 1 {
		t.Fatalf("while running: %d programs on %s egress, want the passive one", out+outF, rs.Link)
	}
	if err := get(); err != nil {
		t.Fatalf("with lvsprobe running: %v", err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done

	for i := range 200 {
		if err := get(); err != nil {
			t.Fatalf("request %d after SIGKILL: %v", i, err)
		}
	}
	if tcx {
		ti, fi := tcIngress(t, rs.Link)
		te, fe := tcEgress(t, rs.Link)
		if ti+fi+te+fe != 0 {
			t.Errorf("after SIGKILL: %d TCX programs and %d tc filters left on %s", ti+te, fi+fe, rs.Link)
		}
	}

	d2 := startKillable(t, conf)
	if in, f := tcIngress(t, rs.Link); in+f != 2 {
		t.Errorf("restarted: %d programs on %s ingress, want 2 (no stale one beside them)", in+f, rs.Link)
	}
	if err := get(); err != nil {
		t.Errorf("with lvsprobe restarted: %v", err)
	}
	if err := d2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-d2.done; err != nil {
		t.Fatalf("restarted lvsprobe: %v", err)
	}
	ti, fi := tcIngress(t, rs.Link)
	te, fe := tcEgress(t, rs.Link)
	if ti+fi+te+fe != 0 {
		t.Errorf("after the clean stop: %d programs left on %s", ti+fi+te+fe, rs.Link)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports"); string(b) != string(resvBefore) {
		t.Errorf("after the clean stop, reserved ports %q, want %q as before the first start", b, resvBefore)
	}
}
