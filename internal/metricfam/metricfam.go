// Package metricfam builds Prometheus metric families directly as
// client_model protobuf structs, for families with thousands of series
// (one per real server) where a prometheus.Collector's const metrics cost
// a Desc check, a label-value copy and about 30 allocations per series on
// every scrape.
//
// A family's series are allocated in a few slabs per scrape; the label
// pairs of a series are built once by the caller (with [Labels]) and
// reused for as long as the series exists. The families a Builder returns
// are what prometheus.Registry.Gather would return for the same const
// metrics: label pairs sorted by name, series sorted by label values.
package metricfam

import (
	"cmp"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// Labels returns the label pairs of a series with the given names and
// values (same length), sorted by name as the registry sorts them. The
// result is meant to be cached and shared between the families whose
// series carry the same labels; it must not be changed afterwards.
func Labels(names, values []string) []*dto.LabelPair {
	pairs := make([]dto.LabelPair, len(names))
	out := make([]*dto.LabelPair, len(names))
	for i := range names {
		pairs[i].Name, pairs[i].Value = &names[i], &values[i]
		out[i] = &pairs[i]
	}
	slices.SortFunc(out, func(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out
}

// Family collects the series of one family during a scrape.
type Family struct {
	mf     *dto.MetricFamily
	ms     []dto.Metric
	vals   []float64
	gauges []dto.Gauge
	ctrs   []dto.Counter
	hists  []dto.Histogram
	counts []uint64
	bucks  []dto.Bucket
	bptrs  []*dto.Bucket
	uppers []float64
}

// NewFamily starts a family of type typ with room for n series (more
// are allowed, at the cost of growing the slabs).
func NewFamily(name, help string, typ dto.MetricType, n int) *Family {
	f := &Family{mf: &dto.MetricFamily{Name: &name, Help: &help, Type: typ.Enum()}}
	f.ms = make([]dto.Metric, 0, n)
	f.vals = make([]float64, 0, n)
	switch typ {
	case dto.MetricType_GAUGE:
		f.gauges = make([]dto.Gauge, 0, n)
	case dto.MetricType_COUNTER:
		f.ctrs = make([]dto.Counter, 0, n)
	}
	return f
}

// next returns a fresh series with labels and a value slot set to v.
// The slabs only grow by reallocation when more than n series were
// added, which leaves the earlier series pointing into the old slab:
// still valid, as nothing is reused.
func (f *Family) next(labels []*dto.LabelPair, v float64) (*dto.Metric, *float64) {
	f.ms = append(f.ms, dto.Metric{Label: labels})
	f.vals = append(f.vals, v)
	return &f.ms[len(f.ms)-1], &f.vals[len(f.vals)-1]
}

// Gauge adds a gauge series.
func (f *Family) Gauge(labels []*dto.LabelPair, v float64) {
	m, p := f.next(labels, v)
	f.gauges = append(f.gauges, dto.Gauge{Value: p})
	m.Gauge = &f.gauges[len(f.gauges)-1]
	f.mf.Metric = append(f.mf.Metric, m)
}

// Counter adds a counter series.
func (f *Family) Counter(labels []*dto.LabelPair, v float64) {
	m, p := f.next(labels, v)
	f.ctrs = append(f.ctrs, dto.Counter{Value: p})
	m.Counter = &f.ctrs[len(f.ctrs)-1]
	f.mf.Metric = append(f.mf.Metric, m)
}

// SetBuckets sets the upper bounds (seconds, ascending, without +Inf)
// of a histogram family's buckets and reserves room for n series. Call
// it once, before the first Histogram.
func (f *Family) SetBuckets(uppers []float64, n int) {
	f.uppers = slices.Clone(uppers)
	f.hists = make([]dto.Histogram, 0, n)
	f.counts = make([]uint64, 0, n*(len(uppers)+1))
	f.bucks = make([]dto.Bucket, 0, n*len(uppers))
	f.bptrs = make([]*dto.Bucket, 0, n*len(uppers))
}

// Histogram adds a histogram series with count samples summing to sum
// and cumulative bucket counts cum (one per upper bound of SetBuckets;
// the +Inf bucket is count, implicit as in a const histogram).
func (f *Family) Histogram(labels []*dto.LabelPair, count uint64, sum float64, cum []uint64) {
	m, p := f.next(labels, sum)
	f.counts = append(f.counts, count)
	f.hists = append(f.hists, dto.Histogram{SampleCount: &f.counts[len(f.counts)-1], SampleSum: p})
	h := &f.hists[len(f.hists)-1]
	b0 := len(f.bptrs)
	for i := range f.uppers {
		f.counts = append(f.counts, cum[i])
		f.bucks = append(f.bucks, dto.Bucket{CumulativeCount: &f.counts[len(f.counts)-1], UpperBound: &f.uppers[i]})
		f.bptrs = append(f.bptrs, &f.bucks[len(f.bucks)-1])
	}
	h.Bucket = f.bptrs[b0:len(f.bptrs):len(f.bptrs)]
	m.Histogram = h
	f.mf.Metric = append(f.mf.Metric, m)
}

// Len returns the number of series added.
func (f *Family) Len() int { return len(f.mf.Metric) }

// Done sorts the series by label values, as the registry does, and
// returns the family, or nil when it has no series (the registry leaves
// such a family out).
func (f *Family) Done() *dto.MetricFamily {
	if len(f.mf.Metric) == 0 {
		return nil
	}
	slices.SortFunc(f.mf.Metric, func(a, b *dto.Metric) int { return CompareLabels(a.Label, b.Label) })
	return f.mf
}

// Sorted returns the family like Done, for a caller that added the
// series already in CompareLabels order (a cached order): no sort.
func (f *Family) Sorted() *dto.MetricFamily {
	if len(f.mf.Metric) == 0 {
		return nil
	}
	return f.mf
}

// CompareLabels orders series by their label values, pair by pair, as
// the registry sorts them.
func CompareLabels(a, b []*dto.LabelPair) int {
	for i := range min(len(a), len(b)) {
		if c := cmp.Compare(a[i].GetValue(), b[i].GetValue()); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// Interner hands out label pairs shared between the series that have
// the same label name and value, so that a cache of many series' labels
// (a service's address and port, the protocol) holds each pair once.
// It is not safe for concurrent use.
type Interner struct {
	pairs map[[2]string]*dto.LabelPair
}

// Labels is [Labels] with the pairs shared through in.
func (in *Interner) Labels(names, values []string) []*dto.LabelPair {
	if in.pairs == nil {
		in.pairs = map[[2]string]*dto.LabelPair{}
	}
	out := make([]*dto.LabelPair, len(names))
	for i := range names {
		k := [2]string{names[i], values[i]}
		p := in.pairs[k]
		if p == nil {
			p = &dto.LabelPair{Name: &k[0], Value: &k[1]}
			in.pairs[k] = p
		}
		out[i] = p
	}
	slices.SortFunc(out, func(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out
}

// Keep drops every pair that no label set of live holds, once the
// series that used them are gone.
func (in *Interner) Keep(live func(yield func([]*dto.LabelPair) bool)) {
	in.pairs = map[[2]string]*dto.LabelPair{}
	for pairs := range live {
		for _, p := range pairs {
			in.pairs[[2]string{p.GetName(), p.GetValue()}] = p
		}
	}
}
