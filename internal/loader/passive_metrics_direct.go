package loader

import (
	"bufio"
	"cmp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvsprobe/lvsprobe/internal/metricfam"
)

// rsLabels are the label pairs of one real server's series, with the
// scrape that last used them and their rank in label order.
type rsLabels struct {
	label string
	pairs []*dto.LabelPair
	used  uint64
	rank  int
}

// passiveSeries is one real server's values of the per-real-server
// families of one map, copied from the read buffers.
type passiveSeries struct {
	rs    *rsLabels
	ctr   [6]uint64 // the counters, in the order of clientNames or ownNames
	cum   [8]uint64 // len(metricBuckets)
	count uint64
	sum   float64
}

// The per-real-server families of each map, in passiveSeries.ctr order.
var (
	clientNames = []string{"syns", "retrans", "synacks", "resets", "refused"}
	ownNames    = []string{"connects", "established", "failed", "refused", "resets", "retrans"}
)

// directState is the direct gatherer's state, guarded by
// passiveCollector.mu.
type directState struct {
	gen     uint64
	cache   map[string]*rsLabels // by real_server label value
	ordered []*rsLabels          // the cache in label order, valid unless dirty
	dirty   bool
	hint    [2]int // series of the last scrape, to size the next one's buffers
	uppers  []float64
}

// DirectGatherer switches c to leave the per-real-server families
// (lvsprobe_passive_client_* and lvsprobe_passive_own_*, counters and
// histograms) out of Collect and returns the Gatherer that builds them
// directly as metric families, with each real server's label pairs built
// once and kept while it is observed. The small families stay in
// Collect. Call it before the first scrape.
func (c *passiveCollector) DirectGatherer() prometheus.Gatherer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.direct = &directState{cache: map[string]*rsLabels{}}
	for _, i := range metricBuckets {
		c.direct.uppers = append(c.direct.uppers, BucketUpper(i).Seconds())
	}
	return passiveDirect{c}
}

// passiveDirect is the passive collector's direct gatherer.
type passiveDirect struct{ c *passiveCollector }

var _ metricfam.LazyGatherer = passiveDirect{}

// Gather implements prometheus.Gatherer.
func (d passiveDirect) Gather() ([]*dto.MetricFamily, error) {
	return metricfam.BuildAll(d.c.gatherDirect())
}

// GatherLazy implements metricfam.LazyGatherer.
func (d passiveDirect) GatherLazy() ([]metricfam.Lazy, error) { return d.c.gatherDirect() }

// gatherDirect reads the per-real-server maps and returns their
// families, to be built after (the values are copied and ranked now).
func (c *passiveCollector) gatherDirect() ([]metricfam.Lazy, error) {
	p := c.p
	p.mu.Lock()
	closed, traced := p.closed, p.trace != nil
	p.mu.Unlock()
	if closed {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.direct
	d.gen++
	client := make([]passiveSeries, 0, d.hint[0])
	err := readBatches(p, p.tc.RsStats, &c.cbuf, bySlot, func(n int) {
		for i := range n {
			if c.cbuf.slot[i] < 0 {
				continue
			}
			v := &c.cbuf.vals[i]
			s := passiveSeries{rs: d.labels(c.cbuf.label[i]), ctr: [6]uint64{v.Syns, v.SynRetrans, v.Synacks, v.Rsts, v.Refused}}
			s.fill((*Histogram)(&v.Lat), float64(v.LatSumNs)/1e9)
			client = append(client, s)
		}
	})
	if err != nil {
		c.errors.Add(1)
	}
	var own []passiveSeries
	if traced {
		own = make([]passiveSeries, 0, d.hint[1])
		err := readBatches(p, p.trace.OwnTargets, &c.obuf, byRSKey(ownKey), func(n int) {
			for i := range n {
				if c.obuf.slot[i] < 0 {
					continue
				}
				v := &c.obuf.vals[i]
				s := passiveSeries{rs: d.labels(c.obuf.label[i]), ctr: [6]uint64{v.Connects, v.Established, v.Failed, v.Refused, v.Resets, v.Retrans}}
				s.fill((*Histogram)(&v.Lat), float64(v.LatSumNs)/1e9)
				own = append(own, s)
			}
		})
		if err != nil {
			c.errors.Add(1)
		}
	}
	d.hint = [2]int{len(client), len(own)}
	d.order()
	var out []metricfam.Lazy
	out = c.families(out, client, clientNames, c.client, c.cHist)
	if traced {
		out = c.families(out, own, ownNames, c.own, c.oHist)
	}
	return out, nil
}

// labels returns the cache entry of label, marked used by this scrape.
func (d *directState) labels(label string) *rsLabels {
	l := d.cache[label]
	if l == nil {
		l = &rsLabels{label: label, pairs: metricfam.Labels([]string{"real_server"}, []string{label})}
		d.cache[label] = l
		d.dirty = true
	}
	l.used = d.gen
	return l
}

// order drops the entries this scrape did not use and ranks the rest in
// label order, when they changed.
func (d *directState) order() {
	for k, l := range d.cache {
		if l.used != d.gen {
			delete(d.cache, k)
			d.dirty = true
		}
	}
	if !d.dirty {
		return
	}
	d.ordered = d.ordered[:0]
	for _, l := range d.cache {
		d.ordered = append(d.ordered, l)
	}
	slices.SortFunc(d.ordered, func(a, b *rsLabels) int { return cmp.Compare(a.label, b.label) })
	for i, l := range d.ordered {
		l.rank = i
	}
	d.dirty = false
}

// name returns the name and help of d.
func (c *passiveCollector) name(d *prometheus.Desc) (string, string) {
	m := c.meta[d]
	return m[0], m[1]
}

// fill sets s's histogram from h, cumulated into metricBuckets as
// constHistogram does.
func (s *passiveSeries) fill(h *Histogram, sum float64) {
	var cum uint64
	next := 0
	for i, v := range h {
		cum += v
		if next < len(metricBuckets) && i == metricBuckets[next] {
			s.cum[next] = cum
			next++
		}
	}
	s.count, s.sum = cum, sum
}

// families appends to out the counter families named by names (their
// Descs in descs) and the histogram family hist of series, in label
// order; one real server read twice (a map changing under the read)
// gives one series, the first. The families are built by their Build.
func (c *passiveCollector) families(out []metricfam.Lazy, series []passiveSeries, names []string, descs map[string]*prometheus.Desc, hist *prometheus.Desc) []metricfam.Lazy {
	slices.SortStableFunc(series, func(a, b passiveSeries) int { return cmp.Compare(a.rs.rank, b.rs.rank) })
	series = slices.CompactFunc(series, func(a, b passiveSeries) bool { return a.rs == b.rs })
	if len(series) == 0 {
		return out // the registry leaves families without series out
	}
	for j, n := range names {
		name, help := c.name(descs[n])
		out = append(out, metricfam.Lazy{Name: name, Build: func() *dto.MetricFamily {
			f := metricfam.NewFamily(name, help, dto.MetricType_COUNTER, len(series))
			for i := range series {
				f.Counter(series[i].rs.pairs, float64(series[i].ctr[j]))
			}
			return f.Sorted()
		}, Text: func(w *bufio.Writer) {
			metricfam.TextHeader(w, name, help, dto.MetricType_COUNTER)
			for i := range series {
				metricfam.TextSample(w, name, series[i].rs.pairs, float64(series[i].ctr[j]))
			}
		}})
	}
	name, help := c.name(hist)
	uppers := c.direct.uppers
	out = append(out, metricfam.Lazy{Name: name, Build: func() *dto.MetricFamily {
		f := metricfam.NewFamily(name, help, dto.MetricType_HISTOGRAM, len(series))
		f.SetBuckets(uppers, len(series))
		for i := range series {
			f.Histogram(series[i].rs.pairs, series[i].count, series[i].sum, series[i].cum[:])
		}
		return f.Sorted()
	}, Text: func(w *bufio.Writer) {
		metricfam.TextHeader(w, name, help, dto.MetricType_HISTOGRAM)
		for i := range series {
			s := &series[i]
			metricfam.TextHistogram(w, name, s.rs.pairs, uppers, s.cum[:len(uppers)], s.count, s.sum)
		}
	}})
	return out
}
