package loader

import (
	"bytes"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/lvsprobe/lvsprobe/internal/metricfam"
	"github.com/lvsprobe/lvsprobe/internal/metricfam/metricfamtest"
)

// fillPassiveStats writes made-up counters and latency histograms into
// the loaded maps of every real server of p: rs_stats by slot and
// own_targets by key, different per real server (seed varies them).
func fillPassiveStats(tb testing.TB, p *Passive, seed uint64) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for slot, g := range p.slots.gen {
		if g == 0 {
			continue
		}
		var v passivePassiveRsStats
		if err := p.tc.RsStats.Lookup(uint32(slot), &v); err != nil {
			tb.Fatalf("lookup slot %d: %v", slot, err)
		}
		x := uint64(slot)*7 + seed
		v.Syns, v.SynRetrans, v.Synacks, v.Rsts, v.Refused = x, x%5, x+1, x%3, x%2
		for i := range v.Lat {
			v.Lat[i] = (x + uint64(i)) % 4
		}
		v.LatSumNs = x * 1234567
		if err := p.tc.RsStats.Put(uint32(slot), &v); err != nil {
			tb.Fatalf("put slot %d: %v", slot, err)
		}
	}
	if p.trace == nil {
		return
	}
	var k passiveTracePassiveRsKey
	var keys []passiveTracePassiveRsKey
	it := p.trace.OwnTargets.Iterate()
	var o passiveTracePassiveOwnStats
	for it.Next(&k, &o) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		tb.Fatal(err)
	}
	for i, k := range keys {
		x := uint64(i)*11 + seed
		o := passiveTracePassiveOwnStats{Connects: x, Established: x / 2, Failed: x % 7, Refused: x % 3, Resets: x % 2, Retrans: x % 13, LatSumNs: x * 999}
		for j := range o.Lat {
			o.Lat[j] = (x * uint64(j)) % 3
		}
		if err := p.trace.OwnTargets.Update(k, o, ebpf.UpdateExist); err != nil {
			tb.Fatalf("update own target: %v", err)
		}
	}
}

// textOf returns g's text exposition.
func textOf(tb testing.TB, g prometheus.Gatherer) string {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatalf("Gather: %v", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			tb.Fatalf("Encode %s: %v", mf.GetName(), err)
		}
	}
	return b.String()
}

// TestPassiveDirectSameExposition: with the maps of a loaded observer
// filled, the registry plus the direct gatherer expose byte for byte what
// the const-metric collector exposes, with and without the tracepoints,
// after the real servers change (the label cache is pruned and refilled)
// and after Close.
func TestPassiveDirectSameExposition(t *testing.T) {
	tests := []struct {
		name    string
		noTrace bool
		sizes   []int
	}{
		{"tc and tracepoints", false, []int{1, 50, 30, 200}},
		{"tc only", true, []int{40, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustLoadPassive(t, PassiveOptions{NoTracepoints: tt.noTrace})
			old := prometheus.NewPedanticRegistry()
			old.MustRegister(newPassiveCollector(p))
			reg := prometheus.NewPedanticRegistry()
			c := newPassiveCollector(p)
			reg.MustRegister(c)
			g := metricfam.NewMerged(reg, c.DirectGatherer())
			for i, n := range tt.sizes {
				if err := p.SetRealServers(benchRealServers(n)); err != nil {
					t.Fatal(err)
				}
				fillPassiveStats(t, p, uint64(i))
				want, got := textOf(t, old), textOf(t, g)
				if got != want {
					t.Fatalf("%d real servers: direct exposition differs\n--- const metrics:\n%s\n--- direct:\n%s", n, want, got)
				}
				name := "lvsprobe_passive_client_handshake_seconds_bucket{real_server=\"198.18.7.2:80\",le=\"8e-06\"}"
				if !bytes.Contains([]byte(got), []byte(name)) {
					t.Fatalf("%d real servers: no %s in\n%s", n, name, got)
				}
				if err := metricfamtest.CompareWith(g, old, "lvsprobe_passive_client_syns_total"); err != nil {
					t.Fatalf("%d real servers: streamed: %v", n, err)
				}
				if again := textOf(t, g); again != got {
					t.Fatalf("%d real servers: a second scrape differs", n)
				}
			}
			p.Close()
			if want, got := textOf(t, old), textOf(t, g); got != want {
				t.Fatalf("after Close: direct exposition differs\n--- const metrics:\n%s\n--- direct:\n%s", want, got)
			}
			if err := metricfamtest.CompareWith(g, old, ""); err != nil {
				t.Fatalf("after Close: streamed: %v", err)
			}
		})
	}
}

// BenchmarkPassiveScrape10k measures one scrape of the passive
// observer's collector with 10,000 real servers in its loaded maps
// (filled with made-up values; root and eBPF needed): "const" with the
// per-real-server families as const metrics through the registry
// (before DirectGatherer), "direct" as they are built now; "gather" is
// the Gather alone, "http" a whole scrape through promhttp (text
// format, gzip), "stream" the same through metricfam.Handler (what the
// daemon serves). It reports the process's CPU time per scrape
// (cpu-ms/op) and the heap's peak above its size after a GC
// (peak-heap-MB, objects live or not yet collected, sampled every
// millisecond).
func BenchmarkPassiveScrape10k(b *testing.B) {
	p := mustLoadPassive(b, PassiveOptions{})
	if err := p.SetRealServers(benchRealServers(10000)); err != nil {
		b.Fatal(err)
	}
	fillPassiveStats(b, p, 1)
	for _, name := range []string{"const/gather", "const/http", "direct/gather", "direct/http", "direct/stream"} {
		direct, served, _ := strings.Cut(name, "/")
		b.Run(name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			c := newPassiveCollector(p)
			reg.MustRegister(c)
			var g prometheus.Gatherer = reg
			if direct == "direct" {
				g = metricfam.NewMerged(reg, c.DirectGatherer())
			}
			h := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
			if served == "stream" {
				h = metricfam.Handler(g.(metricfam.LazyGatherer), metricfam.HandlerOpts{})
			}
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			peak := metricfamtest.HeapPeak(time.Millisecond)
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				if served != "gather" {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 || w.Body.Len() < 100000 {
						b.Fatalf("scrape: %d, %d bytes", w.Code, w.Body.Len())
					}
					continue
				}
				mfs, err := g.Gather()
				if err != nil {
					b.Fatal(err)
				}
				if len(mfs) < 14 {
					b.Fatalf("%d families", len(mfs))
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/1e6/float64(b.N), "cpu-ms/op")
			b.ReportMetric((float64(peak())-float64(base.HeapAlloc))/1e6, "peak-heap-MB")
		})
	}
}
