package synprobe

import (
	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the prober's Prometheus instruments, registered on the
// Registerer given in [Config] (names get the lvsprobe_synprobe_ prefix).
type metrics struct {
	sent       prometheus.Counter
	sentFrames prometheus.Counter // of sent, those that left as prebuilt frames
	sendErrors prometheus.Counter
	answers    *prometheus.CounterVec // by kind: synack, rst
	synacks    prometheus.Counter     // answers{kind="synack"}
	resets     prometheus.Counter     // answers{kind="rst"}
	invalid    *prometheus.CounterVec // by reason
	misses     prometheus.Counter
	rtt        prometheus.Histogram
	dropped    prometheus.Counter
	receiver   *prometheus.GaugeVec // 1 for the receiver in use: ebpf or packet
	kernelLost prometheus.CounterFunc
	rsts       *rstCollector // what the eBPF receiver did with the answers to this host
	targets    prometheus.GaugeFunc
	rateFactor prometheus.Gauge       // fraction of the nominal probe rate (pace.go)
	rateCuts   prometheus.Counter     // times the rate was halved
	wakeProbes prometheus.Histogram   // probes sent per wakeup of the send loop (tick.go)
	paceRounds *prometheus.CounterVec // send-loop rounds by lateness: on_time, send_late, answer_late (pace.go)
}

func newMetrics(reg prometheus.Registerer, lost func() float64, targets func() float64, rsts func() (loader.Stats, bool)) (*metrics, error) {
	const ns, sub = "lvsprobe", "synprobe"
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "probes_sent_total", Help: "SYN probes sent."}),
		sentFrames: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "probes_sent_as_frames_total", Help: "SYN probes sent as prebuilt Ethernet frames on the packet socket (the others left through raw sockets)."}),
		sendErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "send_errors_total", Help: "SYN probes the kernel refused to send."}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "answers_total", Help: "Valid answers to SYN probes, by kind (synack, rst)."}, []string{"kind"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "answers_invalid_total", Help: "Answers ignored, by reason (bad_checksum, bad_cookie, duplicate, late, malformed, truncated, not_answer, unknown_target)."}, []string{"reason"}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "misses_total", Help: "Probes with no valid answer by their deadline: the next probe's departure, or an interval after they left if earlier."}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "rtt_seconds", Help: "Round-trip time of answered SYN probes.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 12)}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "signals_dropped_total", Help: "Signals dropped because their consumer was not keeping up."}),
		receiver: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "receiver", Help: "1 for the answer receiver in use (ebpf, or the packet-socket fallback)."}, []string{"kind"}),
		kernelLost: prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "kernel_lost_total", Help: "Answers the eBPF receiver could not hand up (ring buffer full)."}, lost),
		rsts: &rstCollector{read: rsts, desc: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "receiver_rsts_total"),
			"What the eBPF receiver did with the answers to probes addressed to this host, by action: sent (a SYN-ACK rewritten into its RST and sent back), "+
				"dropped (the real server's RST, once recorded), stack (a SYN-ACK left to the stack's RST: IP options or payload), broken (a SYN-ACK dropped half rewritten). "+
				"All zero with --syn-probe-rst=false: the stack answers.", []string{"action"}, nil)},
		targets: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "targets", Help: "Targets being probed."}, targets),
		rateFactor: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "rate_factor", Help: "Fraction of the nominal probe rate the prober sends at: below 1 while it backs off because the send loop or the answers are late (a starved CPU)."}),
		rateCuts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rate_cuts_total", Help: "Times the probe rate was halved because the send loop or the answers were late."}),
		wakeProbes: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "probes_per_wakeup", Help: "SYN probes sent per wakeup of the send loop (the burst one wakeup puts on the links).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		paceRounds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pace_rounds_total", Help: "Rounds of the send loop, by lateness: on_time, send_late (it took the due probes late), answer_late (an answer waited long to be drained)."}, []string{"lateness"}),
	}
	m.rateFactor.Set(1)
	m.synacks = m.answers.WithLabelValues("synack")
	m.resets = m.answers.WithLabelValues("rst")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sent, m.sentFrames, m.sendErrors, m.answers, m.invalid, m.misses,
		m.rtt, m.dropped, m.receiver, m.kernelLost, m.rsts, m.targets, m.rateFactor, m.rateCuts, m.wakeProbes, m.paceRounds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// rstCollector exposes the eBPF receiver's RST counters (loader.Stats),
// read from the kernel at each scrape.
type rstCollector struct {
	desc *prometheus.Desc
	read func() (loader.Stats, bool) // false: no eBPF receiver
}

// Describe implements prometheus.Collector.
func (c *rstCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *rstCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.read()
	if !ok {
		return
	}
	for _, v := range []struct {
		action string
		n      uint64
	}{{"sent", st.RSTSent}, {"dropped", st.RSTDropped}, {"stack", st.RSTKernel}, {"broken", st.RSTBroken}} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v.n), v.action)
	}
}
