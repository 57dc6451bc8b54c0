package metricfam_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvsprobe/lvsprobe/internal/metricfam"
	"github.com/lvsprobe/lvsprobe/internal/metricfam/metricfamtest"
)

// lazyGatherer returns direct families named names: gauges with n
// series each, built only by Build (counted in built).
type lazyGatherer struct {
	names []string
	n     int
	built atomic.Int32
	hist  bool
}

func (g *lazyGatherer) GatherLazy() ([]metricfam.Lazy, error) {
	var out []metricfam.Lazy
	for k, name := range g.names {
		out = append(out, metricfam.Lazy{Name: name, Build: func() *dto.MetricFamily {
			g.built.Add(1)
			if g.hist && k == 0 {
				f := metricfam.NewFamily(name, "A histogram of "+name+".", dto.MetricType_HISTOGRAM, g.n)
				f.SetBuckets([]float64{0.001, 0.1, 2.5}, g.n)
				for i := range g.n {
					f.Histogram(metricfam.Labels([]string{"rs"}, []string{fmt.Sprintf("198.18.0.%03d", i)}), uint64(10+i), float64(i)/3, []uint64{1, 2, uint64(3 + i)})
				}
				return f.Done()
			}
			f := metricfam.NewFamily(name, help(name), dto.MetricType_COUNTER, g.n)
			for i := range g.n {
				f.Counter(labels(i), value(i, k))
			}
			return f.Done()
		}, Text: func(w *bufio.Writer) {
			if g.hist && k == 0 {
				metricfam.TextHeader(w, name, "A histogram of "+name+".", dto.MetricType_HISTOGRAM)
				for i := range g.n {
					metricfam.TextHistogram(w, name, metricfam.Labels([]string{"rs"}, []string{fmt.Sprintf("198.18.0.%03d", i)}), []float64{0.001, 0.1, 2.5}, []uint64{1, 2, uint64(3 + i)}, uint64(10+i), float64(i)/3)
				}
				return
			}
			metricfam.TextHeader(w, name, help(name), dto.MetricType_COUNTER)
			for i := range g.n {
				metricfam.TextSample(w, name, labels(i), value(i, k))
			}
		}})
	}
	return out, nil
}

func (g *lazyGatherer) Gather() ([]*dto.MetricFamily, error) {
	return metricfam.BuildAll(g.GatherLazy())
}

// help, labels and value make lazyGatherer's counter series: escapes
// in the help and a label value, values 0, 1, -1 and fractions.
func help(name string) string { return "Help of " + name + " with \\ and \"quotes\".\nSecond line." }
func labels(i int) []*dto.LabelPair {
	return metricfam.Labels([]string{"b", "a"}, []string{fmt.Sprintf("v%03d", i), "x\ny\"z\\"})
}
func value(i, k int) float64 { return float64(i*k-1) + float64(i%3)/4 + float64(i)*1e-9*float64(i%2) }

// testRegistry returns a registry with a gauge, a counter vector and a
// histogram whose names interleave with direct families "b_*", "d_*".
func testRegistry() *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "a_gauge", Help: "A gauge."})
	g.Set(3.25)
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "A counter."}, []string{"k"})
	c.WithLabelValues("one").Add(2)
	c.WithLabelValues("two").Inc()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "e_seconds", Help: "A histogram.", Buckets: []float64{0.5, 1}})
	h.Observe(0.7)
	reg.MustRegister(g, c, h)
	return reg
}

// TestHandlerSameAsPromhttp checks that the streamed exposition is
// promhttp's, byte for byte, in every format and encoding, with a
// registry's families interleaved with lazy and built direct ones, and
// that the comparison catches a family out of order or left out.
func TestHandlerSameAsPromhttp(t *testing.T) {
	lazy := &lazyGatherer{names: []string{"b_hist", "d_total", "f_total"}, n: 40, hist: true}
	plain := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		f := metricfam.NewFamily("bb_plain", "Plain.", dto.MetricType_GAUGE, 1)
		f.Gauge(nil, 7)
		return []*dto.MetricFamily{f.Done()}, nil
	})
	m := metricfam.NewMerged(testRegistry(), lazy, plain)
	if err := metricfamtest.Compare(m, "d_total"); err != nil {
		t.Fatal(err)
	}
	for _, drop := range []bool{false, true} {
		if err := metricfamtest.Compare(metricfamtest.Reorder(m, drop), ""); err == nil {
			t.Errorf("Compare found no difference with a family %s", map[bool]string{false: "out of order", true: "left out"}[drop])
		}
	}
}

// TestHandlerErrors checks that gather errors (a collector's, a family
// gathered twice) get promhttp's 500 and are counted, as promhttp does.
func TestHandlerErrors(t *testing.T) {
	reg := testRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "z_ok", Help: "Fine."}, func() float64 { return 1 }))
	m := metricfam.NewMerged(reg, &lazyGatherer{names: []string{"c_total", "g_total"}, n: 2})
	if err := metricfamtest.Compare(m, ""); err != nil {
		t.Fatal(err)
	}
	r, err := metricfamtest.Scrape(metricfam.Handler(m, metricfam.HandlerOpts{}), "", "gzip", "")
	if err != nil || r.Status != http.StatusInternalServerError || !strings.Contains(string(r.Body), "c_total gathered twice") {
		t.Fatalf("clash: %d %q %v: want 500 naming c_total", r.Status, r.Body, err)
	}
	counted := prometheus.NewRegistry()
	h := metricfam.Handler(m, metricfam.HandlerOpts{Registry: counted})
	metricfam.Handler(m, metricfam.HandlerOpts{Registry: counted}) // a second handler shares the counter
	if _, err := metricfamtest.Scrape(h, "", "", ""); err != nil {
		t.Fatal(err)
	}
	if n := mustCounter(t, counted, "gathering"); n != 1 {
		t.Fatalf("promhttp_metric_handler_errors_total{cause=gathering} %v, want 1", n)
	}
}

// mustCounter returns the value of promhttp_metric_handler_errors_total
// {cause} in reg.
func mustCounter(t *testing.T, reg *prometheus.Registry, cause string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			if mf.GetName() == "promhttp_metric_handler_errors_total" && m.Label[0].GetValue() == cause {
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("no promhttp_metric_handler_errors_total{cause=%q}", cause)
	return 0
}

// slowGatherer is a lazy gatherer whose GatherLazy or second family's
// Build waits for release (or the test's end).
type slowGatherer struct {
	slowGather bool
	release    chan struct{}
	active     atomic.Int32
	most       atomic.Int32
}

func (g *slowGatherer) GatherLazy() ([]metricfam.Lazy, error) {
	n := g.active.Add(1)
	defer g.active.Add(-1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	if g.slowGather {
		<-g.release
	}
	fam := func(name string, wait bool) metricfam.Lazy {
		return metricfam.Lazy{Name: name, Build: func() *dto.MetricFamily {
			if wait {
				<-g.release
			}
			f := metricfam.NewFamily(name, "H.", dto.MetricType_GAUGE, 1)
			f.Gauge(nil, 1)
			return f.Done()
		}}
	}
	return []metricfam.Lazy{fam("a", false), fam("b", !g.slowGather)}, nil
}

func (g *slowGatherer) Gather() ([]*dto.MetricFamily, error) {
	return metricfam.BuildAll(g.GatherLazy())
}

// errLog collects the handler's error log.
type errLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *errLog) Println(v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(v...))
}

func (l *errLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestHandlerTimeout checks the Timeout: before the response starts a
// 503 with promhttp's message; while streaming, the connection is cut
// (the client sees an incomplete body, not a short exposition), logged
// and counted as an encoding error.
func TestHandlerTimeout(t *testing.T) {
	for _, slowGather := range []bool{true, false} {
		t.Run(map[bool]string{true: "gather", false: "stream"}[slowGather], func(t *testing.T) {
			g := &slowGatherer{slowGather: slowGather, release: make(chan struct{})}
			reg := prometheus.NewRegistry()
			var log errLog
			const timeout = 200 * time.Millisecond
			srv := httptest.NewServer(metricfam.Handler(g, metricfam.HandlerOpts{Timeout: timeout, Registry: reg, ErrorLog: &log}))
			defer srv.Close()
			// Release the gatherer only once the timeout has passed.
			timer := time.AfterFunc(2*timeout, func() { close(g.release) })
			defer timer.Stop()
			resp, err := http.Get(srv.URL)
			if err != nil {
				if slowGather {
					t.Fatal(err)
				}
				// Cut before the buffered start of the response
				// was sent: an error all the same.
				resp = &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(errReader{err})}
			}
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if slowGather {
				if resp.StatusCode != http.StatusServiceUnavailable || string(body) != "Exceeded configured timeout of 200ms.\n" || rerr != nil {
					t.Fatalf("%d %q %v: want promhttp's 503", resp.StatusCode, body, rerr)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || rerr == nil {
				t.Fatalf("%d %q, read error %v: want the stream cut", resp.StatusCode, body, rerr)
			}
			if !strings.Contains(log.String(), "exceeded the timeout") {
				t.Fatalf("log %q: no timeout", log.String())
			}
			if n := mustCounter(t, reg, "encoding"); n != 1 {
				t.Fatalf("encoding errors %v, want 1", n)
			}
		})
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestHandlerOneAtATime checks that concurrent scrapes are served one
// after the other, all of them complete.
func TestHandlerOneAtATime(t *testing.T) {
	g := &slowGatherer{slowGather: true, release: make(chan struct{})}
	close(g.release)
	h := metricfam.Handler(g, metricfam.HandlerOpts{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			r, err := metricfamtest.Scrape(h, "", "", "")
			if err == nil && (r.Status != http.StatusOK || !strings.Contains(string(r.Exposure), "\nb 1\n")) {
				err = fmt.Errorf("%d %q", r.Status, r.Exposure)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m := g.most.Load(); m != 1 {
		t.Fatalf("%d gathers at once", m)
	}
}

// TestHandlerBuildsLazily checks that a family is built only when it is
// served (protobuf: the text format writes it without building).
func TestHandlerBuildsLazily(t *testing.T) {
	lazy := &lazyGatherer{names: []string{"b_total", "d_total"}, n: 3}
	h := metricfam.Handler(metricfam.NewMerged(testRegistry(), lazy), metricfam.HandlerOpts{})
	if _, err := lazy.GatherLazy(); err != nil || lazy.built.Load() != 0 {
		t.Fatalf("GatherLazy built %d families (%v)", lazy.built.Load(), err)
	}
	r, err := metricfamtest.Scrape(h, metricfamtest.Accepts[4], "", "?name[]=b_total")
	if err != nil || lazy.built.Load() != 1 || !strings.Contains(string(r.Exposure), "b_total") || strings.Contains(string(r.Exposure), "d_total") {
		t.Fatalf("filtered scrape built %d families: %q %v", lazy.built.Load(), r.Exposure, err)
	}
	if r, err := metricfamtest.Scrape(h, "", "gzip", ""); err != nil || lazy.built.Load() != 1 || !strings.Contains(string(r.Exposure), "\nd_total{") {
		t.Fatalf("text scrape: %d families built, want none more (written directly): %q %v", lazy.built.Load(), r.Exposure, err)
	}
}
