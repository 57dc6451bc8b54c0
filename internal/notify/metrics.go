package notify

import "github.com/prometheus/client_golang/prometheus"

// Collector exports a Runner's counters to Prometheus, read fresh on every
// scrape. Register it in cmd.
type Collector struct {
	r       *Runner
	runs    *prometheus.Desc
	refused *prometheus.Desc
	queued  *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector for r.
func NewCollector(r *Runner) *Collector {
	name := func(n string) string { return prometheus.BuildFQName("lvsprobe", "notify", n) }
	return &Collector{
		r:       r,
		runs:    prometheus.NewDesc(name("scripts_total"), "notify_up/down and quorum_up/down notifications by result: ok (exit 0), failed (did not start or exit non-zero), timeout (killed), dropped (queue full or stopping).", []string{"result"}, nil),
		refused: prometheus.NewDesc(name("scripts_refused"), "Scripts of the running configuration refused at load (not found, not executable, insecure under enable_script_security, unknown user).", nil, nil),
		queued:  prometheus.NewDesc(name("queue_length"), "Notifications waiting for a worker.", nil, nil),
	}
}

// Describe sends every metric description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.runs
	ch <- c.refused
	ch <- c.queued
}

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.Stats()
	for _, v := range []struct {
		result string
		n      uint64
	}{{"ok", st.Succeeded}, {"failed", st.Failed}, {"timeout", st.TimedOut}, {"dropped", st.Dropped}} {
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.CounterValue, float64(v.n), v.result)
	}
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.GaugeValue, float64(st.Refused))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(st.Queued))
}
