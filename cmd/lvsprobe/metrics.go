package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/lvsprobe/lvsprobe/internal/metricfam"
)

// defaultMetricsListen is where `lvsprobe run` serves /metrics: loopback
// only, so exposing the metrics to another host is an explicit choice
// (--metrics-listen=ADDR:9118). The port is in the exporters' 9100-9999
// range and differs from node_exporter's 9100 (whose ipvs collector
// lvsprobe's labels join) and from the keepalived exporters', which may
// run beside lvsprobe while keepalived keeps VRRP.
const defaultMetricsListen = "127.0.0.1:9118"

// metricsTimeout bounds one scrape (metricfam.HandlerOpts.Timeout): a
// 503 before the response starts, the connection cut after.
const metricsTimeout = 10 * time.Second

// metricsRetry is how long the metrics listener waits before trying
// again to bind an address that was in use.
const metricsRetry = 10 * time.Second

// newRegistry returns the daemon's private registry with the process,
// Go runtime and build information collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		buildInfo(),
		loader.NewStatusCollector(),
	)
	return reg
}

// buildInfo is lvsprobe_build_info: constant 1 with the version, the VCS
// revision and the Go version as labels.
func buildInfo() prometheus.Collector {
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lvsprobe_build_info",
		Help: "Always 1; the labels say which lvsprobe build is running.",
		ConstLabels: prometheus.Labels{"version": version, "revision": rev, "goversion": runtime.Version(),
			"goos": runtime.GOOS, "goarch": runtime.GOARCH},
	})
	g.Set(1)
	return g
}

// checkMetricsListen reports what is wrong with a --metrics-listen value:
// empty, or HOST:PORT with a numeric port.
func checkMetricsListen(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("--metrics-listen %q: want HOST:PORT (127.0.0.1:9118, [::1]:9118, :9118) or \"\": %w", addr, err)
	}
	return nil
}

// serveMetrics serves reg on /metrics at addr until ctx is done. When addr
// cannot be bound (a port in use), it logs an error naming the address and
// tries again every metricsRetry: the checks keep running without metrics
// rather than the director losing its health checker. An empty addr
// serves nothing.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, reg *metricsRegistry) {
	if addr == "" {
		log.Info("metrics endpoint off (--metrics-listen=\"\")")
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricfam.Handler(reg, metricfam.HandlerOpts{
		Registry: reg.Registry, ErrorLog: slogPrinter{log}, Timeout: metricsTimeout,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	var lc net.ListenConfig
	for failed := false; ; {
		l, err := lc.Listen(ctx, "tcp", addr)
		if err == nil {
			log.Info("serving metrics", "address", "http://"+l.Addr().String()+"/metrics")
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics endpoint stopped", "address", addr, "error", err)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !failed {
			log.Error(fmt.Sprintf("metrics endpoint unavailable: cannot listen on %s (--metrics-listen); checks go on, retrying every %s", addr, metricsRetry),
				"address", addr, "error", err)
			failed = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(metricsRetry):
		}
	}
}

// slogPrinter adapts a logger to the metrics handler's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "error", fmt.Sprint(v...)) }
