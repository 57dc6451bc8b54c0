package metricfam

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// text returns mfs's text exposition.
func text(t *testing.T, mfs ...*dto.MetricFamily) string {
	t.Helper()
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestFamilyLikeRegistry checks that families built here expose what
// the registry exposes for the same const metrics: label pairs sorted by
// name, series by label values, histograms with the implicit +Inf bucket.
func TestFamilyLikeRegistry(t *testing.T) {
	names := []string{"zone", "addr"}
	values := [][]string{{"b", "10.0.0.2"}, {"a", "10.0.0.10"}, {"b", "10.0.0.1"}}
	tests := []struct {
		name     string
		typ      dto.MetricType
		build    func(f *Family, labels []*dto.LabelPair, i int)
		viaConst func(d *prometheus.Desc, i int, lv []string) prometheus.Metric
	}{
		{"gauge", dto.MetricType_GAUGE,
			func(f *Family, l []*dto.LabelPair, i int) { f.Gauge(l, float64(i)+0.5) },
			func(d *prometheus.Desc, i int, lv []string) prometheus.Metric {
				return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(i)+0.5, lv...)
			}},
		{"counter", dto.MetricType_COUNTER,
			func(f *Family, l []*dto.LabelPair, i int) { f.Counter(l, float64(i*3)) },
			func(d *prometheus.Desc, i int, lv []string) prometheus.Metric {
				return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(i*3), lv...)
			}},
		{"histogram", dto.MetricType_HISTOGRAM,
			func(f *Family, l []*dto.LabelPair, i int) {
				f.Histogram(l, uint64(10+i), float64(i)*1.5, []uint64{uint64(i), uint64(i + 2)})
			},
			func(d *prometheus.Desc, i int, lv []string) prometheus.Metric {
				return prometheus.MustNewConstHistogram(d, uint64(10+i), float64(i)*1.5, map[float64]uint64{0.5: uint64(i), 2: uint64(i + 2)}, lv...)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "test_" + tt.name
			d := prometheus.NewDesc(name, "Help.", names, nil)
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(newFixedCollector(func(ch chan<- prometheus.Metric) {
				for i, lv := range values {
					ch <- tt.viaConst(d, i, lv)
				}
			}, d))
			want, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			f := NewFamily(name, "Help.", tt.typ, 1) // grows past its room
			if tt.typ == dto.MetricType_HISTOGRAM {
				f.SetBuckets([]float64{0.5, 2}, 1)
			}
			for i, lv := range values {
				tt.build(f, Labels(names, lv), i)
			}
			if f.Len() != len(values) {
				t.Fatalf("Len %d", f.Len())
			}
			if got, w := text(t, f.Done()), text(t, want...); got != w {
				t.Fatalf("got\n%s\nwant\n%s", got, w)
			}
		})
	}
	if NewFamily("empty", "Help.", dto.MetricType_GAUGE, 0).Done() != nil {
		t.Error("an empty family was returned")
	}
}

// fixedCollector is a collector of fixed Descs sending what fn sends.
type fixedCollector struct {
	fn    func(chan<- prometheus.Metric)
	descs []*prometheus.Desc
}

// newFixedCollector returns a fixedCollector.
func newFixedCollector(fn func(chan<- prometheus.Metric), descs ...*prometheus.Desc) prometheus.Collector {
	return &fixedCollector{fn, descs}
}

func (c *fixedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}
func (c *fixedCollector) Collect(ch chan<- prometheus.Metric) { c.fn(ch) }

// TestMerged checks the merge order, a clash and Add's remove.
func TestMerged(t *testing.T) {
	fam := func(name string) *dto.MetricFamily {
		f := NewFamily(name, "Help.", dto.MetricType_GAUGE, 1)
		f.Gauge(nil, 1)
		return f.Done()
	}
	static := func(names ...string) prometheus.Gatherer {
		return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			var out []*dto.MetricFamily
			for _, n := range names {
				out = append(out, fam(n))
			}
			return out, nil
		})
	}
	m := NewMerged(static("b", "d"), static("c"))
	remove := m.Add(static("a", "d"))
	mfs, err := m.Gather()
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	if strings.Join(got, ",") != "a,b,c,d" || err == nil || !strings.Contains(err.Error(), "d gathered twice") {
		t.Fatalf("got %v, %v: want a,b,c,d and a clash on d", got, err)
	}
	remove()
	if mfs, err = m.Gather(); err != nil || len(mfs) != 3 {
		t.Fatalf("after remove: %d families, %v", len(mfs), err)
	}
}
