//go:build linux

// Command clientload is the client traffic of scripts/bench/detecthost: a
// bounded HTTP load generator that keeps CONNS keep-alive connections to
// each port of ADDR:FIRST-LAST, each sending at most RATE requests a
// second, and writes one line per request to -out, so the script can count
// the requests and connections that failed in any window of time (wrk
// reports totals only). A failed request closes its connection; the next
// request of that slot connects again, so a dead server sees connection
// attempts at the client's rate, as it would in production.
//
// Each line: START_UNIX_MS PORT RESULT NEWCONN LATENCY_US, where NEWCONN is
// 1 when the request opened its connection and RESULT is one of
//
//	ok               a 200 answer
//	refused          the connect got a RST (nothing listens)
//	connect_timeout  the connect got no answer within -connect-timeout
//	connect_error    another connect failure
//	reset            the connection was reset during the request
//	timeout          no full answer within -timeout
//	closed           the server closed the connection before answering
//	status           an answer other than 200
//	error            anything else
//
// The run ends after -d, after -max requests in all, or on SIGTERM or
// SIGINT, whichever comes first; then it prints a summary line.
//
// A connect waits -connect-timeout (default 3 s, so that the kernel
// retransmits an unanswered SYN at 1 s as a real client's would: the
// director's passive observer counts those), a request's answer -timeout.
//
// usage: clientload -target ADDR:FIRST-LAST -d DURATION [-conns N] [-rate R] [-timeout T] [-connect-timeout T] [-max N] -out FILE
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// target is a range of ports on one IPv4 address.
type target struct {
	addr        netip.Addr
	first, last uint16
}

// parseTarget parses ADDR:FIRST-LAST (or ADDR:PORT).
func parseTarget(s string) (target, error) {
	host, ports, ok := strings.Cut(s, ":")
	if !ok {
		return target{}, fmt.Errorf("target %q: want ADDR:FIRST-LAST", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return target{}, fmt.Errorf("target %q: want an IPv4 address", s)
	}
	lo, hi, found := strings.Cut(ports, "-")
	if !found {
		hi = lo
	}
	first, err1 := strconv.ParseUint(lo, 10, 16)
	last, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || first == 0 || first > last {
		return target{}, fmt.Errorf("target %q: want ports FIRST-LAST, 0 < FIRST <= LAST", s)
	}
	return target{addr: a, first: uint16(first), last: uint16(last)}, nil
}

// options are the load's parameters.
type options struct {
	target  target
	conns   int           // connections per port
	rate    float64       // requests a second per connection, at most
	timeout time.Duration // for a request's answer
	connect time.Duration // for a connect
	max     int64         // requests in all, at most
}

// result is the outcome of one request (see the package doc).
type result string

// The results of a request.
const (
	resOK             result = "ok"
	resRefused        result = "refused"
	resConnectTimeout result = "connect_timeout"
	resConnectError   result = "connect_error"
	resReset          result = "reset"
	resTimeout        result = "timeout"
	resClosed         result = "closed"
	resStatus         result = "status"
	resError          result = "error"
)

// classify names the failure err of a request (dial: in its connect).
func classify(err error, dial bool) result {
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	switch {
	case dial && errors.Is(err, syscall.ECONNREFUSED):
		return resRefused
	case dial && timeout:
		return resConnectTimeout
	case dial:
		return resConnectError
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return resReset
	case timeout:
		return resTimeout
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return resClosed
	}
	return resError
}

// record is one request's line.
type record struct {
	start   time.Time
	port    uint16
	res     result
	newConn bool
	took    time.Duration
}

// recorder writes records to w, one line each.
type recorder struct {
	mu     sync.Mutex
	w      *bufio.Writer
	counts map[result]int64
}

func (r *recorder) add(rec record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[rec.res]++
	nc := 0
	if rec.newConn {
		nc = 1
	}
	fmt.Fprintf(r.w, "%d %d %s %d %d\n", rec.start.UnixMilli(), rec.port, rec.res, nc, rec.took.Microseconds())
}

// slot is one client connection to one port, reconnected after a failure.
type slot struct {
	addr    string
	port    uint16
	timeout time.Duration
	connect time.Duration
	conn    net.Conn
	br      *bufio.Reader
	req     []byte
}

// do sends one request (connecting first when the slot has no connection)
// and returns how it went.
func (s *slot) do(ctx context.Context) record {
	rec := record{start: time.Now(), port: s.port}
	fail := func(err error, dial bool) record {
		rec.res = classify(err, dial)
		if s.conn != nil {
			s.conn.Close()
			s.conn = nil
		}
		rec.took = time.Since(rec.start)
		return rec
	}
	if s.conn == nil {
		rec.newConn = true
		d := net.Dialer{Timeout: s.connect}
		c, err := d.DialContext(ctx, "tcp4", s.addr)
		if err != nil {
			return fail(err, true)
		}
		s.conn = c
		s.br = bufio.NewReader(c)
	}
	if err := s.conn.SetDeadline(time.Now().Add(s.timeout)); err != nil {
		return fail(err, false)
	}
	if _, err := s.conn.Write(s.req); err != nil {
		return fail(err, false)
	}
	resp, err := http.ReadResponse(s.br, nil)
	if err != nil {
		return fail(err, false)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fail(err, false)
	}
	rec.res = resOK
	if resp.StatusCode != http.StatusOK {
		rec.res = resStatus
	}
	if resp.Close {
		s.conn.Close()
		s.conn = nil
	}
	rec.took = time.Since(rec.start)
	return rec
}

// run drives the load until ctx is done or o.max requests were sent.
func run(ctx context.Context, o options, rec *recorder) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sent atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / o.rate)
	for p := int(o.target.first); p <= int(o.target.last); p++ {
		for range o.conns {
			s := &slot{
				addr: netip.AddrPortFrom(o.target.addr, uint16(p)).String(), port: uint16(p), timeout: o.timeout, connect: o.connect,
				req: []byte("GET / HTTP/1.1\r\nHost: " + o.target.addr.String() + "\r\nUser-Agent: lvsprobe-clientload\r\n\r\n"),
			}
			wg.Go(func() {
				defer func() {
					if s.conn != nil {
						s.conn.Close()
					}
				}()
				t := time.NewTicker(interval) // drops ticks while a request waits: the rate is a ceiling
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
					}
					if sent.Add(1) > o.max {
						cancel()
						return
					}
					r := s.do(ctx)
					if ctx.Err() != nil && r.res != resOK {
						return // cut short by the end of the run, not the server's doing
					}
					rec.add(r)
				}
			})
		}
	}
	wg.Wait()
}

func main() {
	var (
		tgt     = flag.String("target", "", "ADDR:FIRST-LAST: the ports to load")
		conns   = flag.Int("conns", 2, "keep-alive connections per port")
		rate    = flag.Float64("rate", 50, "requests a second per connection, at most")
		timeout = flag.Duration("timeout", time.Second, "the wait for each answer")
		connect = flag.Duration("connect-timeout", 3*time.Second, "the wait for a connect")
		dur     = flag.Duration("d", 0, "how long to run (required, at most 1h)")
		max     = flag.Int64("max", 10_000_000, "requests in all, at most")
		out     = flag.String("out", "", "file for the per-request lines (required)")
	)
	flag.Parse()
	t, err := parseTarget(*tgt)
	if err == nil && (*conns < 1 || *conns > 64 || *rate <= 0 || *rate > 10000 || *timeout <= 0 || *connect <= 0 || *dur <= 0 || *dur > time.Hour || *max < 1 || *out == "") {
		err = errors.New("want -conns 1..64, -rate in (0, 10000], -timeout and -connect-timeout > 0, -d in (0, 1h], -max >= 1 and -out")
	}
	if err != nil {
		slog.Error("clientload: bad flags", "error", err)
		os.Exit(2)
	}
	if err := load(options{target: t, conns: *conns, rate: *rate, timeout: *timeout, connect: *connect, max: *max}, *dur, *out); err != nil {
		slog.Error("clientload failed", "error", err)
		os.Exit(1)
	}
}

// load runs the load for at most dur, writing the lines to path, and
// prints the summary.
func load(o options, dur time.Duration, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	rec := &recorder{w: bufio.NewWriterSize(f, 1<<16), counts: map[result]int64{}}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	fmt.Printf("clientload ready: %d ports, %d connections each, at most %g requests/s each\n",
		int(o.target.last)-int(o.target.first)+1, o.conns, o.rate)
	run(ctx, o, rec)
	if err := rec.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	var b strings.Builder
	for _, r := range []result{resOK, resRefused, resConnectTimeout, resConnectError, resReset, resTimeout, resClosed, resStatus, resError} {
		fmt.Fprintf(&b, " %s %d", r, rec.counts[r])
	}
	fmt.Printf("clientload requests:%s\n", b.String())
	return f.Close()
}
