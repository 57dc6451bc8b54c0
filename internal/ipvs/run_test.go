package ipvs

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// lineWriter sends every line written to it on a channel.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w <- l
	}
	return len(p), nil
}

// expect waits for the next commands and compares them with want.
func expect(t *testing.T, lines lineWriter, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-lines:
			if got != w {
				t.Fatalf("got command %q, want %q", got, w)
			}
		case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
			t.Fatalf("no command; want %q", w)
		}
	}
}

func TestRunAppliesChangesRepairsDriftAndFlushesOnStop(t *testing.T) {
	vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1))
	cfg := configOf(vs)
	cfg.Global.LVSFlushOnStop = "VS"
	lines := make(lineWriter, 100)
	dry := NewDryRun(nil, lines)
	ctx := context.Background()
	foreign := config.ServiceKey{Protocol: config.TCP, Addr: netip.MustParseAddr("198.18.0.99"), Port: 80, Family: "inet"}
	mustNil(t, dry.AddService(ctx, Service{ServiceKey: foreign, Scheduler: "rr"}))
	expect(t, lines, "ipvsadm -A -t 198.18.0.99:80 -s rr")

	r := NewReconciler(dry, cfg, ReconcilerOptions{ResyncInterval: 50 * time.Millisecond})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()

	expect(t, lines,
		"ipvsadm -A -t 198.18.0.1:80 -s wlc",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 1",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.2:80 -m -w 1")

	r.SetHealth(key(vs, 0), false)
	expect(t, lines, "ipvsadm -d -t 198.18.0.1:80 -r 198.18.1.1:80")

	// Someone runs ipvsadm -d: the next resync puts it back.
	mustNil(t, dry.DeleteDestination(ctx, vs.Services[0], Destination{Addr: netip.MustParseAddr("198.18.1.2"), Port: 80}))
	expect(t, lines,
		"ipvsadm -d -t 198.18.0.1:80 -r 198.18.1.2:80",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.2:80 -m -w 1")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	expect(t, lines, "ipvsadm -D -t 198.18.0.1:80")
	svcs, err := dry.Services(ctx)
	mustNil(t, err)
	if len(svcs) != 1 || serviceID(svcs[0].ServiceKey) != serviceID(foreign) {
		t.Fatalf("after stop the table holds %v, want only the foreign service", svcs)
	}
	select {
	case l := <-lines:
		t.Fatalf("unexpected command after stop: %q", l)
	default:
	}
}
