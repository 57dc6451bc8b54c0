package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/lvsprobe/lvsprobe/internal/notify"
	"github.com/lvsprobe/lvsprobe/internal/prober"
	"github.com/lvsprobe/lvsprobe/internal/prober/synprobe"
)

// updateMetricsDoc rewrites docs/metrics.md (make metrics-doc).
var updateMetricsDoc = flag.Bool("update-metrics-doc", false, "rewrite docs/metrics.md from the registered descriptors")

// metricsDocPath is the metrics reference, relative to this package.
const metricsDocPath = "../../docs/metrics.md"

// conventionalType types a family that a registry built without
// privileges or activity describes but cannot gather (the eBPF programs'
// counters, a flap penalty before any flap) by the naming conventions every family here follows: _total is a
// counter, a duration in _seconds (not a _timestamp_seconds) a histogram,
// the rest gauges. TestMetricsPromtool checks the types against the live
// daemon's exposition.
func conventionalType(name string) string {
	switch {
	case strings.HasSuffix(name, "_total"):
		return "counter"
	case strings.HasSuffix(name, "_seconds") && !strings.HasSuffix(name, "_timestamp_seconds"):
		return "histogram"
	}
	return "gauge"
}

// sectionTitles name the reference's sections, by the word after
// lvsprobe_ in the metric names.
var sectionTitles = map[string]string{
	"bpf": "eBPF programs", "build": "Build", "check": "Checks", "config": "Configuration", "detector": "Failure detector",
	"ipvs": "IPVS", "notify": "Notify scripts", "passive": "Passive observation (eBPF)", "real": "Real servers",
	"scheduler": "Check scheduler", "synprobe": "SYN probes",
}

// metricDoc is one family of the reference.
type metricDoc struct {
	name, typ, help string
	labels          []string
}

// typingRegisterer registers on a registry and remembers the type of
// every vector it sees (a vector with no child yet gathers nothing).
type typingRegisterer struct {
	*prometheus.Registry
	types map[string]string // by family name
}

func (r *typingRegisterer) Register(c prometheus.Collector) error {
	typ := ""
	switch c.(type) {
	case *prometheus.CounterVec:
		typ = "counter"
	case *prometheus.GaugeVec:
		typ = "gauge"
	case *prometheus.HistogramVec:
		typ = "histogram"
	case *prometheus.SummaryVec:
		typ = "summary"
	}
	if typ != "" {
		for _, d := range describe(c) {
			r.types[d.name] = typ
		}
	}
	return r.Registry.Register(c)
}

func (r *typingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// describe returns the descriptors of c, parsed.
func describe(c prometheus.Collector) []metricDoc {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	var out []metricDoc
	for d := range ch {
		out = append(out, parseDesc(d.String()))
	}
	return out
}

// parseDesc reads the name, help and variable labels out of a
// descriptor's String form: Desc{fqName: "…", help: "…", unit: "…",
// constLabels: {…}, variableLabels: {a,b}}.
func parseDesc(s string) metricDoc {
	var m metricDoc
	quoted := func(key string) string {
		i := strings.Index(s, key+": ")
		if i < 0 {
			return ""
		}
		q, err := strconv.QuotedPrefix(s[i+len(key)+2:])
		if err != nil {
			return ""
		}
		v, _ := strconv.Unquote(q)
		return v
	}
	m.name, m.help = quoted("fqName"), quoted("help")
	if i := strings.LastIndex(s, "variableLabels: {"); i >= 0 {
		rest := s[i+len("variableLabels: {"):]
		if j := strings.Index(rest, "}"); j > 0 {
			for _, l := range strings.Split(rest[:j], ",") {
				l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")")
				m.labels = append(m.labels, l)
			}
		}
	}
	return m
}

// docRegistry builds what `lvsprobe run` registers, without privileges:
// the same collectors over a small configuration (one reconcile pass done,
// so that every per-destination family has a series).
func docRegistry(t *testing.T) (*prometheus.Registry, map[string]string, []prometheus.Collector) {
	t.Helper()
	reg := &typingRegisterer{Registry: newRegistry(), types: map[string]string{}}
	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	writeFile(t, conf, strings.Replace(runConf, "PORT", "80", 1))
	log := slog.New(slog.DiscardHandler)
	f := runFlags{file: conf}
	cfg, err := loadRunConfig(log, f)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := prober.NewScheduler(cfg, prober.SchedulerOptions{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rec := ipvs.NewReconciler(ipvs.NewDryRun(log, io.Discard), cfg, ipvs.ReconcilerOptions{Log: log})
	if err := rec.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	own := []prometheus.Collector{prober.NewSchedulerCollector(sched), ipvs.NewCollector(rec)}
	reg.MustRegister(own...)
	newReloader(log, f, cfg, sched, rec, nil, reg)
	if err := synprobe.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := startDetector(log, "fast", sched, reg); err != nil {
		t.Fatal(err)
	}
	startPassive(context.Background(), log, passiveFlags{mode: "off"}, synFlags{}, cfg, reg) // lvsprobe_passive_available
	reg.MustRegister(loader.PassiveMetricsForDoc(), notify.NewCollector(notify.New(notify.Options{Log: log})))
	return reg.Registry, reg.types, own
}

// metricsReference renders docs/metrics.md.
func metricsReference(t *testing.T) string {
	reg, types, _ := docRegistry(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		types[mf.GetName()] = strings.ToLower(dto.MetricType_name[int32(mf.GetType())])
	}
	// Every descriptor, from the registry's own Describe.
	all := map[string]metricDoc{}
	for _, m := range describe(reg) {
		if strings.HasPrefix(m.name, "go_") || strings.HasPrefix(m.name, "process_") {
			continue
		}
		m.typ = types[m.name]
		if m.typ == "" {
			m.typ = conventionalType(m.name)
		}
		all[m.name] = m
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.Sort(names)

	var b strings.Builder
	b.WriteString(`# Metrics reference

<!-- Generated by "make metrics-doc" from the descriptors lvsprobe registers
(cmd/lvsprobe/metricsdoc_test.go). Do not edit: TestMetricsDoc fails when
this file is stale. -->

` + "`lvsprobe run`" + ` serves these in Prometheus's text format on
` + "`http://127.0.0.1:9118/metrics`" + ` (` + "`--metrics-listen ADDR`" + ` moves it, ` + "`--metrics-listen=\"\"`" + `
turns it off), from a registry of its own: the families below, plus the
standard ` + "`process_*`" + ` and ` + "`go_*`" + ` families of the Prometheus Go client.

Per-destination families carry the labels of node_exporter's
` + "`node_ipvs_backend_*`" + ` (` + "`local_address`, `local_port`, `remote_address`, `remote_port`, `proto`, `local_mark`" + `),
with the values node_exporter reads from ` + "`/proc/net/ip_vs`" + `, so they join:

` + "```promql" + `
# real servers lvsprobe says are down but IPVS still sends new connections to
node_ipvs_backend_weight > 0
  and on (local_address, local_port, remote_address, remote_port, proto, local_mark)
lvsprobe_real_server_up == 0
` + "```" + `

A stalled check loop (keepalived #2523) shows as
` + "`time() - lvsprobe_scheduler_heartbeat_timestamp_seconds > 10`" + `.
A rejected reload as ` + "`lvsprobe_config_last_reload_successful == 0`" + `.
The Grafana dashboard in [grafana/lvsprobe.json](grafana/lvsprobe.json) uses them.

`)
	section := ""
	for _, n := range names {
		m := all[n]
		s := strings.SplitN(strings.TrimPrefix(n, "lvsprobe_"), "_", 2)[0]
		if s != section {
			section = s
			title := sectionTitles[s]
			if title == "" {
				title = s
			}
			fmt.Fprintf(&b, "\n## %s\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n", title)
		}
		labels := "—"
		if len(m.labels) > 0 {
			labels = "`" + strings.Join(m.labels, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", n, m.typ, labels, strings.ReplaceAll(m.help, "|", `\|`))
	}
	return b.String()
}

// TestMetricsDoc fails when docs/metrics.md differs from what the code
// registers; `make metrics-doc` rewrites it.
func TestMetricsDoc(t *testing.T) {
	want := metricsReference(t)
	if *updateMetricsDoc {
		if err := os.WriteFile(metricsDocPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(metricsDocPath)
	if err != nil {
		t.Fatalf("%v (make metrics-doc writes it)", err)
	}
	if string(got) != want {
		t.Fatalf("docs/metrics.md is stale: run make metrics-doc")
	}
}

// documentedMetrics returns the families docs/metrics.md lists, with
// their types.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(metricsDocPath)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "| `"); ok {
			cells := strings.Split(rest, " | ")
			if i := strings.Index(cells[0], "`"); i > 0 && len(cells) > 1 {
				out[cells[0][:i]] = cells[1]
			}
		}
	}
	return out
}
