package ipvs

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/metricfam"
	"github.com/lvsprobe/lvsprobe/internal/metricfam/metricfamtest"
)

// exposition returns g's text exposition.
func exposition(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("Encode %s: %v", mf.GetName(), err)
		}
	}
	return b.String()
}

// TestDirectGathererSameExposition checks that the registry plus the
// direct gatherer expose byte for byte what the registry with the
// const-metric collector exposes (same families, help, types, series,
// label order, values and series order), for a series of tables and
// after each change (health, weight, configuration: the label cache is
// pruned and refilled).
func TestDirectGathererSameExposition(t *testing.T) {
	web := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 8080, 3), realServer("198.18.1.2", 8080, 2), realServer("198.18.1.3", 8080, 1))
	web.RealServers[1].InhibitOnFailure = true
	fwm := &config.VirtualServer{FWMark: 7, Family: "inet", Protocol: config.TCP, Scheduler: "rr", Method: config.DR, Quorum: 1,
		RealServers: []*config.RealServer{realServer("198.18.2.1", 443, 5), realServer("198.18.2.2", 443, 1)}}
	fwm.RealServers[0].Method = config.DR
	v6 := virtualServer("2001:db8::1", 53, realServer("2001:db8::10", 53, 1), realServer("::ffff:198.18.3.1", 53, 1))
	// Two DR real servers on one destination (ports differ, DR keeps the
	// service's): one series, the first.
	dup := virtualServer("198.18.0.2", 443, realServer("198.18.4.1", 8443, 1), realServer("198.18.4.1", 9443, 4))
	for _, rs := range dup.RealServers {
		rs.Method = config.DR
	}
	grp := virtualServer("198.18.0.3", 80, realServer("198.18.5.1", 80, 1))
	grp.Group = "g"
	grp.Services = []config.ServiceKey{{Protocol: config.TCP, Addr: grp.Addr, Port: 80, Family: "inet"}, {Protocol: config.UDP, Addr: grp.Addr, Port: 81, Family: "inet"}}

	tests := []struct {
		name  string
		cfg   *config.Config
		steps []func(h *harness) // each followed by a pass and a comparison
	}{
		{"empty", configOf(), nil},
		{"mixed", configOf(web, fwm, v6, dup, grp), []func(h *harness){
			func(h *harness) { h.r.SetHealth(key(web, 1), false); h.r.SetHealth(key(web, 2), false) },
			func(h *harness) { h.r.SetWeight(key(fwm, 1), 9) },
			func(h *harness) { h.r.Update(configOf(web, v6)) },
			func(h *harness) { h.r.SetHealth(key(web, 1), true) },
			func(h *harness) { h.r.Update(configOf(web, fwm, v6, dup, grp)) },
		}},
		{"bench 5x20", benchConfig(5, 20, true), []func(h *harness){
			func(h *harness) { h.r.Update(benchConfig(3, 30, false)) },
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			old := prometheus.NewPedanticRegistry()
			mustNil(t, old.Register(NewCollector(h.r)))
			reg := prometheus.NewPedanticRegistry()
			c := NewCollector(h.r)
			mustNil(t, reg.Register(c))
			g := metricfam.NewMerged(reg, c.DirectGatherer())
			compare := func(step int) {
				t.Helper()
				want, got := exposition(t, old), exposition(t, g)
				if got != want {
					t.Fatalf("step %d: direct exposition differs\n--- const metrics:\n%s\n--- direct:\n%s", step, want, got)
				}
				if step > 0 && !bytes.Contains([]byte(got), []byte(realServerUpName+"{")) && tt.name != "empty" {
					t.Fatalf("step %d: no %s series:\n%s", step, realServerUpName, got)
				}
				// Streamed (metricfam.Handler) as promhttp serves the
				// const metrics: every format, gzip or not.
				if err := metricfamtest.CompareWith(g, old, realServerUpName); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
			}
			compare(0)
			h.pass()
			compare(1)
			for i, step := range tt.steps {
				step(h)
				h.pass()
				compare(i + 2)
				compare(i + 2) // a second scrape from the cache
			}
		})
	}
}

// TestDirectGathererConcurrent gathers from several goroutines while the
// reconciler's health and configuration change (run with -race): every
// gather has both families, with series in label order.
func TestDirectGathererConcurrent(t *testing.T) {
	h := newHarness(t, benchConfig(4, 25, false))
	h.pass()
	c := NewCollector(h.r)
	g := c.DirectGatherer()
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				mfs, err := g.Gather()
				if err == nil && len(mfs) != 2 {
					err = fmt.Errorf("gather %d: %d families", i, len(mfs))
				}
				for _, mf := range mfs {
					if err == nil && !slices.IsSortedFunc(mf.Metric, func(a, b *dto.Metric) int { return metricfam.CompareLabels(a.Label, b.Label) }) {
						err = fmt.Errorf("gather %d: %s not in label order", i, mf.GetName())
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	cfg := h.r.cfg
	for i := range 20 {
		vs := cfg.VirtualServers[i%len(cfg.VirtualServers)]
		h.r.SetHealth(key(vs, i%len(vs.RealServers)), i%2 == 0)
		if i%5 == 0 {
			h.r.Update(benchConfig(3+i%2, 20+i, false))
		}
		h.pass()
		cfg = h.r.cfg
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
