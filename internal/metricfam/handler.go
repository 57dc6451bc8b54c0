package metricfam

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// HandlerOpts configures Handler. The zero value has no log, no error
// counter and no time limit.
type HandlerOpts struct {
	// ErrorLog, if set, gets every error gathering or sending metrics.
	ErrorLog interface{ Println(v ...any) }
	// Registry, if set, gets promhttp_metric_handler_errors_total{cause},
	// the counter promhttp.HandlerOpts.Registry registers.
	Registry prometheus.Registerer
	// Timeout bounds a scrape from the request's arrival. Reached before
	// the response has started (waiting for another scrape, gathering),
	// the answer is promhttp's 503 "Exceeded configured timeout"; reached
	// while streaming, the connection is cut between two families (and
	// writes stalled past it fail), so a client never takes a partial
	// exposition for a whole one. Nothing is buffered to enforce it.
	Timeout time.Duration
}

// Handler serves g's exposition like promhttp.HandlerFor(g,
// promhttp.HandlerOpts{ErrorLog, Registry, Timeout}) — the same bytes
// for the same families: the format negotiated from Accept among the
// formats promhttp offers without OpenMetrics, gzip when Accept-Encoding
// asks for it as promhttp would choose it, the name[] filter, a gather
// error answered with promhttp's 500 (HTTPErrorOnError) — but it streams:
// each family is built just before it is encoded and dropped after, so a
// scrape holds one large family's structs at a time, and the response
// is never buffered whole (promhttp's Timeout does, through
// http.TimeoutHandler).
//
// Errors: everything that can fail in gathering (a collector's error, a
// family name gathered twice) is known before the first byte is sent and
// answered with the 500 as promhttp does; building a family cannot fail.
// An encoding or write error mid-stream, or the Timeout, is logged,
// counted as cause "encoding" and ends the response by aborting the
// connection (http.ErrAbortHandler): with the status already sent, that
// is the only way a client can tell the exposition is incomplete.
//
// One scrape is served at a time; others wait for it (until their
// request is cancelled or their Timeout), each then gathering afresh:
// waiting holds no families.
func Handler(g LazyGatherer, opts HandlerOpts) http.Handler {
	errCnt := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promhttp_metric_handler_errors_total",
		Help: "Total number of internal errors encountered by the promhttp metric handler.",
	}, []string{"cause"})
	if opts.Registry != nil {
		errCnt.WithLabelValues("gathering")
		errCnt.WithLabelValues("encoding")
		if err := opts.Registry.Register(errCnt); err != nil {
			are := &prometheus.AlreadyRegisteredError{}
			if !errors.As(err, are) {
				panic(fmt.Errorf("metrics handler: registering its error counter: %w", err))
			}
			errCnt = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	h := &handler{g: g, opts: opts, errCnt: errCnt, sem: make(chan struct{}, 1)}
	return h
}

// handler is Handler's http.Handler.
type handler struct {
	g      LazyGatherer
	opts   HandlerOpts
	errCnt *prometheus.CounterVec
	sem    chan struct{} // one scrape at a time
}

// log logs to the ErrorLog, if any.
func (h *handler) log(v ...any) {
	if h.opts.ErrorLog != nil {
		h.opts.ErrorLog.Println(v...)
	}
}

// timedOut answers as http.TimeoutHandler does before anything is sent.
func (h *handler) timedOut(rsp http.ResponseWriter) {
	rsp.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rsp.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(rsp, fmt.Sprintf("Exceeded configured timeout of %v.\n", h.opts.Timeout))
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(rsp http.ResponseWriter, req *http.Request) {
	var deadline time.Time
	var expired <-chan time.Time
	if h.opts.Timeout > 0 {
		deadline = time.Now().Add(h.opts.Timeout)
		t := time.NewTimer(h.opts.Timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	case <-req.Context().Done():
		return
	case <-expired:
		h.timedOut(rsp)
		return
	}
	lazy, err := h.g.GatherLazy()
	if err != nil {
		h.log("error gathering metrics:", err)
		h.errCnt.WithLabelValues("gathering").Inc()
		rsp.Header().Del("Content-Encoding")
		http.Error(rsp, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
		return
	}
	if !deadline.IsZero() && time.Now().After(deadline) {
		h.timedOut(rsp)
		return
	}
	if !deadline.IsZero() {
		_ = http.NewResponseController(rsp).SetWriteDeadline(deadline) // unsupported: the between-family check remains
	}
	format := expfmt.NegotiateAccept(req.Header, expfmt.DefaultAcceptedFormats()...)
	rsp.Header().Add("Vary", "Accept")
	rsp.Header().Add("Vary", "Accept-Encoding")
	rsp.Header().Set("Content-Type", string(format))
	var w io.Writer = rsp
	var gz *gzip.Writer
	switch contentEncoding(req.Header) {
	case "gzip":
		rsp.Header().Set("Content-Encoding", "gzip")
		gz = gzip.NewWriter(rsp)
		w = gz
	case "":
		h.log("error getting writer", fmt.Errorf("content compression format not recognized: every offered encoding refused (q=0) by %q", req.Header.Values("Accept-Encoding")))
	}
	var filter map[string]bool
	if req.URL != nil {
		if names := req.URL.Query()["name[]"]; len(names) > 0 {
			filter = map[string]bool{}
			for _, n := range names {
				filter[n] = true
			}
		}
	}
	enc := expfmt.NewEncoder(w, format)
	// The text format 0.0.4 is what Prometheus negotiates (without
	// OpenMetrics offered): families that can write themselves skip
	// their structs.
	text := format.FormatType() == expfmt.TypeTextPlain
	var bw *bufio.Writer
	for i := range lazy {
		l := lazy[i]
		lazy[i] = Lazy{} // drop the family's inputs once encoded
		if filter != nil && !filter[l.Name] {
			continue
		}
		if l.Text != nil && text {
			if bw == nil {
				bw = bufio.NewWriterSize(w, 32<<10)
			}
			l.Text(bw)
			if err := bw.Flush(); err != nil {
				h.abort(fmt.Errorf("encoding %s: %w", l.Name, err))
			}
			h.checkDeadline(deadline, l.Name)
			continue
		}
		mf := l.Build()
		h.checkDeadline(deadline, l.Name)
		if err := enc.Encode(mf); err != nil {
			h.abort(fmt.Errorf("encoding %s: %w", l.Name, err))
		}
	}
	if closer, ok := enc.(expfmt.Closer); ok {
		if err := closer.Close(); err != nil {
			h.abort(fmt.Errorf("closing the exposition: %w", err))
		}
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			h.abort(fmt.Errorf("closing gzip: %w", err))
		}
	}
}

// checkDeadline aborts the response once deadline has passed.
func (h *handler) checkDeadline(deadline time.Time, name string) {
	if !deadline.IsZero() && time.Now().After(deadline) {
		h.abort(fmt.Errorf("scrape exceeded the timeout of %v at %s: connection cut", h.opts.Timeout, name))
	}
}

// abort logs err, counts it and cuts the connection.
func (h *handler) abort(err error) {
	h.log("error encoding and sending metric family:", err)
	h.errCnt.WithLabelValues("encoding").Inc()
	panic(http.ErrAbortHandler)
}

// contentEncoding chooses between identity and gzip from the request's
// Accept-Encoding as promhttp does: the offer (identity first, then
// gzip) of the highest q among the codings naming it or "*", identity
// winning ties; no header means identity; "" when that q is 0.
func contentEncoding(h http.Header) string {
	best, bestQ := "identity", -1.0
	specs := acceptSpecs(h.Values("Accept-Encoding"))
	for _, offer := range []string{"identity", "gzip"} {
		for _, s := range specs {
			if s.q > bestQ && (s.coding == "*" || s.coding == offer) {
				best, bestQ = offer, s.q
			}
		}
	}
	if bestQ == 0 {
		return ""
	}
	return best
}

// acceptSpec is one coding of an Accept-Encoding header with its q.
type acceptSpec struct {
	coding string
	q      float64
}

// acceptSpecs parses Accept-Encoding values: comma-separated codings,
// each with an optional ";q=" weight in [0, 1]. A coding with other
// parameters or a malformed weight is skipped.
func acceptSpecs(values []string) []acceptSpec {
	var out []acceptSpec
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.TrimSpace(coding)
			if coding == "" {
				continue
			}
			s := acceptSpec{coding: coding, q: 1}
			if params = strings.TrimSpace(params); params != "" {
				qs, ok := strings.CutPrefix(params, "q=")
				if !ok {
					continue
				}
				q, err := strconv.ParseFloat(strings.TrimSpace(qs), 64)
				if err != nil || q < 0 || q > 1 {
					continue
				}
				s.q = q
			}
			out = append(out, s)
		}
	}
	return out
}
