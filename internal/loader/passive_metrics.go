package loader

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// passiveCollector exports the passive observer's counters, read from
// the maps at each scrape into buffers it keeps (labels come from the
// real servers' slots: no string is built per scrape).
type passiveCollector struct {
	p      *Passive
	errors atomic.Uint64
	mu     sync.Mutex // one scrape reads into the buffers at a time
	cbuf   batchBuf[uint32, passivePassiveRsStats]
	obuf   batchBuf[passiveTracePassiveRsKey, passiveTracePassiveOwnStats]

	client map[string]*prometheus.Desc
	own    map[string]*prometheus.Desc
	cHist  *prometheus.Desc
	oHist  *prometheus.Desc
	skip   *prometheus.Desc
	tcp    *prometheus.Desc
	full   *prometheus.Desc
	miss   *prometheus.Desc
	drop   *prometheus.Desc
	up     *prometheus.Desc
	links  *prometheus.Desc
	errs   *prometheus.Desc

	meta   map[*prometheus.Desc][2]string // name and help of each Desc, for the direct families
	direct *directState                   // set by DirectGatherer: the per-real-server families are built there
}

var _ prometheus.Collector = (*passiveCollector)(nil)

// metricBuckets are the upper bounds (as [Histogram] bucket indexes) of
// the exported latency histograms: 8 µs, 64 µs, 512 µs, 4 ms, 33 ms,
// 262 ms, 2 s, 17 s - every third log2 bucket keeps the series few for
// 10,000 real servers.
var metricBuckets = []int{2, 5, 8, 11, 14, 17, 20, 23}

func newPassiveCollector(p *Passive) *passiveCollector {
	meta := map[*prometheus.Desc][2]string{}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		fq := prometheus.BuildFQName("lvsprobe", "passive", name)
		desc := prometheus.NewDesc(fq, help, labels, nil)
		meta[desc] = [2]string{fq, help}
		return desc
	}
	rs := "real_server"
	return &passiveCollector{
		p: p, meta: meta,
		client: map[string]*prometheus.Desc{
			"syns":    d("client_syns_total", "Client SYNs forwarded to the real server (TC egress).", rs),
			"retrans": d("client_syn_retransmits_total", "Client SYNs seen again for the same 4-tuple: unanswered handshakes.", rs),
			"synacks": d("client_synacks_total", "SYN-ACKs from the real server (TC ingress; NAT only).", rs),
			"resets":  d("client_resets_total", "RSTs from the real server to clients (TC ingress).", rs),
			"refused": d("client_refused_total", "RSTs from the real server answering a client SYN.", rs),
		},
		own: map[string]*prometheus.Desc{
			"connects":    d("own_connects_total", "The director's own connects to the real server (tracepoint).", rs),
			"established": d("own_established_total", "Own connects that completed the handshake.", rs),
			"failed":      d("own_failed_total", "Own connects that ended in SYN_SENT: refused, timed out or given up.", rs),
			"refused":     d("own_refused_total", "RSTs received by own sockets in SYN_SENT.", rs),
			"resets":      d("own_resets_total", "RSTs received by own established sockets.", rs),
			"retrans":     d("own_retransmits_total", "Segments retransmitted by own sockets.", rs),
		},
		cHist: d("client_handshake_seconds", "Client SYN to real server SYN-ACK, handshakes without retransmission; only a sample of 1 in N handshakes is timed (lvsprobe run --passive-sample N, default 8; chosen by a hash of the 4-tuple), so the count is about 1/N of the handshakes.", rs),
		oHist: d("own_connect_seconds", "Own connects, SYN_SENT to ESTABLISHED.", rs),
		skip:  d("packets_skipped_total", "Packets passed uncounted, by reason.", "reason"),
		tcp:   d("handshake_packets_total", "TCP handshake packets examined on the real-server links: SYNs toward the real servers, SYN-ACKs and RSTs from them (data segments and ACKs are not counted)."),
		full:  d("map_full_total", "Entries lost because a map was full, by map.", "map"),
		miss:  d("handshake_misses_total", "SYN-ACKs without a tracked SYN (not tracked: its real server's handshake ways were all in flight; answered twice, or an asymmetric path)."),
		drop:  d("events_dropped_total", "Events the consumer did not take in time."),
		up:    d("programs_up", "Whether a part of the passive observer runs (1) or not (0).", "part"),
		links: d("links", "Links the TC programs are attached to."),
		errs:  d("collection_errors_total", "Errors reading the passive maps for metrics."),
	}
}

// Describe implements prometheus.Collector.
func (c *passiveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.client {
		ch <- d
	}
	for _, d := range c.own {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{c.cHist, c.oHist, c.skip, c.tcp, c.full, c.miss, c.drop, c.up, c.links, c.errs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *passiveCollector) Collect(ch chan<- prometheus.Metric) {
	defer func() {
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(c.errors.Load()))
	}()
	p := c.p
	p.mu.Lock()
	links, closed := len(p.attached), p.closed
	p.mu.Unlock()
	if closed {
		return
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.up, 1, "tc")
	if p.trace != nil {
		gauge(c.up, 1, "tracepoints")
	} else {
		gauge(c.up, 0, "tracepoints")
	}
	gauge(c.links, float64(links))
	c.mu.Lock()
	if c.direct != nil {
		c.mu.Unlock()
		c.collectTotals(ch)
		return
	}
	cd := [...]*prometheus.Desc{c.client["syns"], c.client["retrans"], c.client["synacks"], c.client["resets"], c.client["refused"]}
	err := readBatches(p, p.tc.RsStats, &c.cbuf, bySlot, func(n int) {
		for i := range n {
			if c.cbuf.slot[i] < 0 {
				continue
			}
			v, rs := &c.cbuf.vals[i], c.cbuf.label[i]
			for j, x := range [...]uint64{v.Syns, v.SynRetrans, v.Synacks, v.Rsts, v.Refused} {
				counter(cd[j], x, rs)
			}
			ch <- constHistogram(c.cHist, (*Histogram)(&v.Lat), float64(v.LatSumNs)/1e9, rs)
		}
	})
	if err != nil {
		c.errors.Add(1)
	}
	if p.trace != nil {
		od := [...]*prometheus.Desc{c.own["connects"], c.own["established"], c.own["failed"], c.own["refused"], c.own["resets"], c.own["retrans"]}
		err := readBatches(p, p.trace.OwnTargets, &c.obuf, byRSKey(ownKey), func(n int) {
			for i := range n {
				if c.obuf.slot[i] < 0 {
					continue
				}
				v, rs := &c.obuf.vals[i], c.obuf.label[i]
				for j, x := range [...]uint64{v.Connects, v.Established, v.Failed, v.Refused, v.Resets, v.Retrans} {
					counter(od[j], x, rs)
				}
				ch <- constHistogram(c.oHist, (*Histogram)(&v.Lat), float64(v.LatSumNs)/1e9, rs)
			}
		})
		if err != nil {
			c.errors.Add(1)
		}
	}
	c.mu.Unlock()
	c.collectTotals(ch)
}

// collectTotals sends the observer's totals.
func (c *passiveCollector) collectTotals(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st, err := c.p.Stats()
	if err != nil {
		c.errors.Add(1)
		return
	}
	counter(c.tcp, st.HandshakePackets)
	for reason, v := range map[string]uint64{
		"not_ip": st.NotIP, "not_tcp": st.NotTCP, "fragment": st.Fragments,
		"ipv6_ext_header": st.IPv6ExtHeaders, "truncated": st.Truncated, "unknown_real_server": st.UnknownRS,
	} {
		counter(c.skip, v, reason)
	}
	for m, v := range map[string]uint64{
		"real_servers": st.MapFull, "handshakes": st.HandshakeFull, "own_connects": st.OwnFull, "events": st.RingFull,
	} {
		counter(c.full, v, m)
	}
	counter(c.miss, st.HandshakeMissed)
	counter(c.drop, st.Dropped)
}

// constHistogram turns a log2 histogram into a Prometheus histogram with
// the coarser metricBuckets.
func constHistogram(d *prometheus.Desc, h *Histogram, sum float64, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(metricBuckets))
	var cum uint64
	next := 0
	for i, v := range h {
		cum += v
		if next < len(metricBuckets) && i == metricBuckets[next] {
			buckets[BucketUpper(i).Seconds()] = cum
			next++
		}
	}
	return prometheus.MustNewConstHistogram(d, cum, sum, buckets, labels...)
}
