// Package metricfamtest checks, for tests, that metricfam.Handler
// serves a gatherer exactly as promhttp.HandlerFor does.
package metricfamtest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/metrics"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvsprobe/lvsprobe/internal/metricfam"
)

// Accepts are the Accept headers compared: none, the text format, what
// Prometheus sends (OpenMetrics first, which the handlers answer with
// text as promhttp without EnableOpenMetrics does), OpenMetrics alone,
// and protobuf delimited.
var Accepts = []string{
	"",
	"text/plain;version=0.0.4",
	"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
	"application/openmetrics-text;version=1.0.0",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
}

// Encodings are the Accept-Encoding headers compared.
var Encodings = []string{"", "gzip", "gzip, deflate, br", "identity, gzip", "gzip;q=0.5, identity;q=0.2", "*", "gzip;q=0, identity;q=0"}

// Response is one scrape's answer, the body decompressed.
type Response struct {
	Status   int
	Header   http.Header // Content-Type, Content-Encoding and Vary only
	Body     []byte      // as sent
	Exposure []byte      // Body without its Content-Encoding
}

// Scrape serves one request through h.
func Scrape(h http.Handler, accept, encoding, query string) (Response, error) {
	req := httptest.NewRequest(http.MethodGet, "/metrics"+query, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	r := Response{Status: w.Code, Header: http.Header{}, Body: w.Body.Bytes(), Exposure: w.Body.Bytes()}
	for _, k := range []string{"Content-Type", "Content-Encoding", "Vary"} {
		if v := w.Header().Values(k); len(v) > 0 {
			r.Header[k] = v
		}
	}
	if w.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(r.Body))
		if err != nil {
			return r, fmt.Errorf("gzip: %w", err)
		}
		if r.Exposure, err = io.ReadAll(zr); err != nil {
			return r, fmt.Errorf("gunzip: %w", err)
		}
	}
	return r, nil
}

// Compare serves g through metricfam.Handler and through
// promhttp.HandlerFor (g's families, built) and returns the first
// difference, as CompareWith.
func Compare(g metricfam.LazyGatherer, filter string) error { return CompareWith(g, g, filter) }

// CompareWith serves g through metricfam.Handler and ref through
// promhttp.HandlerFor in every format of Accepts and encoding of
// Encodings, with and without a name[] filter for filter (if set), and
// returns the first difference: status, headers, the exposition or the
// bytes sent. A stream that drops, adds, duplicates or reorders a family
// differs. Both must return the same exposition on every gather.
func CompareWith(g metricfam.LazyGatherer, ref prometheus.Gatherer, filter string) error {
	stream := metricfam.Handler(g, metricfam.HandlerOpts{})
	promh := promhttp.HandlerFor(ref, promhttp.HandlerOpts{})
	queries := []string{""}
	if filter != "" {
		queries = append(queries, "?name[]="+filter)
	}
	for _, q := range queries {
		for _, a := range Accepts {
			for _, e := range Encodings {
				want, err := Scrape(promh, a, e, q)
				if err != nil {
					return fmt.Errorf("promhttp, Accept %q, Accept-Encoding %q%s: %w", a, e, q, err)
				}
				got, err := Scrape(stream, a, e, q)
				if err != nil {
					return fmt.Errorf("stream, Accept %q, Accept-Encoding %q%s: %w", a, e, q, err)
				}
				where := fmt.Sprintf("Accept %q, Accept-Encoding %q%s", a, e, q)
				switch {
				case got.Status != want.Status:
					return fmt.Errorf("%s: status %d, promhttp %d", where, got.Status, want.Status)
				case !equalHeaders(got.Header, want.Header):
					return fmt.Errorf("%s: headers %v, promhttp %v", where, got.Header, want.Header)
				case !bytes.Equal(got.Exposure, want.Exposure):
					return fmt.Errorf("%s: exposition differs (%d bytes, promhttp %d)\n--- promhttp:\n%s\n--- stream:\n%s", where, len(got.Exposure), len(want.Exposure), clip(want.Exposure), clip(got.Exposure))
				case !bytes.Equal(got.Body, want.Body):
					return fmt.Errorf("%s: same exposition, different bytes sent (%d, promhttp %d)", where, len(got.Body), len(want.Body))
				}
			}
		}
	}
	return nil
}

// equalHeaders compares two header subsets value by value.
func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// clip shortens an exposition for an error message.
func clip(b []byte) string {
	if len(b) > 4000 {
		return string(b[:4000]) + "\n[...]"
	}
	return string(b)
}

// Reorder wraps g so that its families come in another order (the last
// two swapped) or with one left out (the middle one): what Compare must
// catch.
func Reorder(g metricfam.LazyGatherer, drop bool) metricfam.LazyGatherer {
	return mangled{g, drop}
}

// mangled is Reorder's gatherer.
type mangled struct {
	g    metricfam.LazyGatherer
	drop bool
}

// GatherLazy implements metricfam.LazyGatherer.
func (m mangled) GatherLazy() ([]metricfam.Lazy, error) {
	l, err := m.g.GatherLazy()
	switch {
	case len(l) < 2:
	case m.drop:
		l = slices.Delete(l, len(l)/2, len(l)/2+1)
	default:
		l[len(l)-1], l[len(l)-2] = l[len(l)-2], l[len(l)-1]
	}
	return l, err
}

// Gather implements prometheus.Gatherer, unchanged.
func (m mangled) Gather() ([]*dto.MetricFamily, error) { return m.g.Gather() }

// HeapPeak samples the heap's object bytes (runtime/metrics, live and
// not yet collected) every interval until the returned function is
// called, which returns the highest sample: for benchmarks, the peak
// heap during a scrape.
func HeapPeak(interval time.Duration) (stop func() uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	done := make(chan struct{})
	peak := make(chan uint64, 1)
	go func() {
		var most uint64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			metrics.Read(s)
			most = max(most, s[0].Value.Uint64())
			select {
			case <-done:
				peak <- most
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		return <-peak
	}
}
