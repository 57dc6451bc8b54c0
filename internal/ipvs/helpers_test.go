package ipvs

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lvsprobe/lvsprobe/internal/config"
)

// realServer returns a NAT real server with one TCP_CHECK.
func realServer(addr string, port uint16, weight int) *config.RealServer {
	a := netip.MustParseAddr(addr)
	return &config.RealServer{
		Addr: a, Port: port, Weight: weight, Method: config.NAT,
		Checkers: []*config.Checker{{Type: config.TCPCheck, ConnectIP: a, ConnectPort: port}},
	}
}

// virtualServer returns a TCP virtual server on addr:port with rss.
func virtualServer(addr string, port uint16, rss ...*config.RealServer) *config.VirtualServer {
	a := netip.MustParseAddr(addr)
	fam := "inet"
	if a.Is6() {
		fam = "inet6"
	}
	return &config.VirtualServer{
		Addr: a, Port: port, Family: fam, Protocol: config.TCP,
		Services:  []config.ServiceKey{{Protocol: config.TCP, Addr: a, Port: port, Family: fam}},
		Scheduler: "wlc", Method: config.NAT, Quorum: 1, RealServers: rss,
	}
}

func configOf(vss ...*config.VirtualServer) *config.Config {
	return &config.Config{VirtualServers: vss}
}

// fakeClock is a settable clock for backoff tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// harness is a reconciler over a DryRun whose printed commands are kept.
type harness struct {
	t     *testing.T
	r     *Reconciler
	dry   *DryRun
	out   *bytes.Buffer
	clock *fakeClock
}

func newHarness(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	out := &bytes.Buffer{}
	dry := NewDryRun(nil, out)
	return newHarnessOn(t, dry, out, dry, cfg)
}

// newHarnessOn builds a harness whose reconciler writes through b (dry
// or a wrapper of it).
func newHarnessOn(t *testing.T, dry *DryRun, out *bytes.Buffer, b Backend, cfg *config.Config) *harness {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := NewReconciler(b, cfg, ReconcilerOptions{RetryBase: time.Second, RetryMax: 8 * time.Second, now: clock.now})
	return &harness{t: t, r: r, dry: dry, out: out, clock: clock}
}

// pass runs one reconcile pass that must succeed and returns the ipvsadm
// commands it issued.
func (h *harness) pass() []string {
	h.t.Helper()
	cmds, err := h.passErr()
	if err != nil {
		h.t.Fatalf("Reconcile: %v", err)
	}
	return cmds
}

func (h *harness) passErr() ([]string, error) {
	h.out.Reset()
	err := h.r.Reconcile(context.Background())
	return lines(h.out.String()), err
}

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// key returns the health key of the i-th real server of vs.
func key(vs *config.VirtualServer, i int) config.RealServerKey {
	return vs.RealServers[i].Key(vs)
}

// tableDump returns the DryRun table as sorted "svc -> dest w=N" lines.
func tableDump(t *testing.T, b Backend) []string {
	t.Helper()
	ctx := context.Background()
	svcs, err := b.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(svcs, func(a, b Service) int { return compareServiceKeys(serviceID(a.ServiceKey), serviceID(b.ServiceKey)) })
	var out []string
	for _, s := range svcs {
		out = append(out, ipvsadmServiceCmd("-A", s))
		ds, err := b.Destinations(ctx, s.ServiceKey)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(ds, func(a, b Destination) int { return compareDestKeys(keyOf(a), keyOf(b)) })
		for _, d := range ds {
			out = append(out, ipvsadmDestCmd("-a", s.ServiceKey, d))
		}
	}
	return out
}

func newBuffer() *bytes.Buffer { return &bytes.Buffer{} }

// mustReconcileTo runs one pass of r, fails t unless b's table then equals
// want, and fails it if a second pass writes anything (idempotence).
func mustReconcileTo(t *testing.T, ctx context.Context, r *Reconciler, b Backend, want []string) {
	t.Helper()
	mustNil(t, r.Reconcile(ctx))
	if diff := cmp.Diff(want, tableDump(t, b)); diff != "" {
		t.Fatalf("table (-want +got):\n%s", diff)
	}
	writes := r.Stats().Writes()
	mustNil(t, r.Reconcile(ctx))
	if w := r.Stats().Writes(); w != writes {
		t.Fatalf("second pass wrote %d times", w-writes)
	}
}
