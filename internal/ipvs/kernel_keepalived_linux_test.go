//go:build linux

package ipvs

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// adoptConfig is testdata/keepalived-adopt.conf as the parser resolves it.
func adoptConfig() *config.Config {
	vs1 := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 8080, 3), realServer("198.18.1.2", 8080, 1))
	vs1.Scheduler, vs1.Persistence, vs1.PersistMask = "wrr", 300*time.Second, v4("255.255.255.0")
	vs1.RealServers[1].InhibitOnFailure = true

	vs2 := virtualServer("198.18.0.2", 53, realServer("198.18.1.3", 53, 2))
	vs2.Protocol, vs2.Services[0].Protocol = config.UDP, config.UDP
	vs2.Scheduler, vs2.SchedFlags, vs2.OnePacket, vs2.Method = "sh", []string{"sh-port", "sh-fallback"}, true, config.DR
	vs2.RealServers[0].Method = config.DR

	fwm := &config.VirtualServer{
		FWMark: 7, Family: "inet", Protocol: config.TCP, Services: []config.ServiceKey{{FWMark: 7, Family: "inet"}},
		Scheduler: "rr", Method: config.DR, Quorum: 1, RealServers: []*config.RealServer{realServer("198.18.1.5", 80, 1)},
	}
	fwm.RealServers[0].Method = config.DR

	vs6 := virtualServer("2001:db8::1", 443, realServer("2001:db8::10", 8443, 5))
	vs6.Scheduler = "lc"

	vs5 := virtualServer("198.18.0.3", 80, realServer("198.18.1.6", 8080, 1), realServer("198.18.1.7", 8080, 1))
	vs5.Quorum = 2
	vs5.SorryServer = &config.SorryServer{Addr: v4("198.18.2.1"), Port: 8080}
	vs5.SorryServerInhibit = true
	return configOf(vs1, vs2, fwm, vs6, vs5)
}

// TestKernelAdoptsKeepalivedTable runs keepalived 2.2.7 on
// testdata/keepalived-adopt.conf in a fresh namespace, stops it leaving
// its IPVS table (-I), and checks that a reconciler on the same
// configuration finds nothing to write: the desired table is
// keepalived's, field for field, and a migration from keepalived costs no
// churn.
func TestKernelAdoptsKeepalivedTable(t *testing.T) {
	requireIPVS(t)
	keepalived := testenv.RequireProgram(t, "keepalived")
	k, done := kernelInNewNetNS(t)
	defer done()
	ctx := context.Background()

	dir := t.TempDir()
	var out bytes.Buffer
	// The child inherits the network namespace of this locked thread.
	cmd := exec.Command(keepalived, "-n", "-l", "-C", "-I",
		"-f", filepath.Join("testdata", "keepalived-adopt.conf"),
		"-p", filepath.Join(dir, "keepalived.pid"), "-c", filepath.Join(dir, "checkers.pid"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start keepalived: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	// Wait (bounded) until keepalived has built its whole table.
	const wantDests = 8
	deadline := time.Now().Add(60 * time.Second)
	for n := 0; n != wantDests; n = len(tableDump(t, k)) - 5 {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("keepalived exited early: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("keepalived built %d of %d destinations in 60s\n%s", n, wantDests, out.String())
		}
	}
	mustNil(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := <-exited; err != nil {
		t.Logf("keepalived exit: %v", err)
	}
	stopped = true
	before := tableDump(t, k)
	t.Logf("keepalived's table:\n%s", joinLines(before))

	r := NewReconciler(k, adoptConfig(), ReconcilerOptions{})
	mustNil(t, r.Reconcile(ctx))
	if diff := cmp.Diff(before, tableDump(t, k)); diff != "" || r.Stats().Writes() != 0 {
		t.Fatalf("lvsprobe rewrote keepalived's table (%v):\n%s", r.Stats().Ops, diff)
	}
}

func joinLines(l []string) string {
	var b bytes.Buffer
	for _, s := range l {
		b.WriteString(s + "\n")
	}
	return b.String()
}
