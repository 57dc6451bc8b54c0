package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/prober"
)

// errReloadBusy is returned by tryReload while another reload runs.
var errReloadBusy = errors.New("a reload is already in progress; try again when it ends")

// reloadResult is the outcome of one reload, as `lvsprobe reload` and
// `lvsprobe status` show it.
type reloadResult struct {
	OK       bool      `json:"ok"`
	At       time.Time `json:"at"`
	Trigger  string    `json:"trigger"`            // SIGHUP or control (lvsprobe reload)
	Errors   []string  `json:"errors,omitempty"`   // FILE:LINE: message, one per diagnostic; the running configuration stays
	Warnings []string  `json:"warnings,omitempty"` // FILE:LINE: message
	Checks   int       `json:"checks"`             // distinct checks running after the reload
	Pending  int       `json:"checks_pending"`     // of them, checks with no attempt yet: the changed and added ones (the others kept their state and schedule), and any still before their first attempt
}

// reloader applies a new configuration to the running daemon, on SIGHUP
// and on `lvsprobe reload`: one reload at a time, all or nothing (a file
// that fails to load or whose checkers cannot be built changes nothing).
// The scheduler keeps the state and schedule of every check whose block
// did not change, so only changed and new checks restart.
type reloader struct {
	log   *slog.Logger
	f     runFlags
	sched *prober.Scheduler
	rec   *ipvs.Reconciler
	syn   *synProbe
	life  *lifecycle // scripts and sd_notify; nil: none

	mu       sync.Mutex // one reload at a time
	busy     atomic.Bool
	cfg      atomic.Pointer[config.Config] // the running configuration
	loadedAt atomic.Pointer[time.Time]     // when it was loaded
	last     atomic.Pointer[reloadResult]  // the last reload, nil before the first

	reloads  *prometheus.CounterVec
	lastOK   prometheus.Gauge
	lastTime prometheus.Gauge
}

// newReloader returns a reloader for the running cfg and registers its
// metrics on reg (nil: none).
func newReloader(log *slog.Logger, f runFlags, cfg *config.Config, sched *prober.Scheduler, rec *ipvs.Reconciler, syn *synProbe, reg prometheus.Registerer) *reloader {
	r := &reloader{log: log, f: f, sched: sched, rec: rec, syn: syn,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lvsprobe_config_reloads_total",
			Help: "Configuration reloads (SIGHUP or lvsprobe reload), by result (success, failure)."}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lvsprobe_config_last_reload_successful",
			Help: "1 when the last configuration load (at start or on reload) succeeded, 0 when the last reload was rejected and the previous configuration still runs."}),
		lastTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lvsprobe_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load (at start or on reload)."}),
	}
	now := time.Now()
	r.cfg.Store(cfg)
	r.loadedAt.Store(&now)
	r.reloads.WithLabelValues("success")
	r.reloads.WithLabelValues("failure")
	r.lastOK.Set(1)
	r.lastTime.Set(float64(now.UnixNano()) / 1e9)
	if reg != nil {
		reg.MustRegister(r.reloads, r.lastOK, r.lastTime)
	}
	return r
}

// config returns the running configuration and when it was loaded.
func (r *reloader) config() (*config.Config, time.Time) { return r.cfg.Load(), *r.loadedAt.Load() }

// reloading reports whether a reload is running now.
func (r *reloader) reloading() bool { return r.busy.Load() }

// lastResult returns the last reload's outcome, or nil.
func (r *reloader) lastResult() *reloadResult { return r.last.Load() }

// onHUP reloads on every SIGHUP until ctx is done.
func (r *reloader) onHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.mu.Lock()
			r.reloadLocked("SIGHUP")
			r.mu.Unlock()
		}
	}
}

// tryReload reloads now, or returns errReloadBusy while another reload
// runs.
func (r *reloader) tryReload(trigger string) (*reloadResult, error) {
	if !r.mu.TryLock() {
		return nil, errReloadBusy
	}
	defer r.mu.Unlock()
	return r.reloadLocked(trigger), nil
}

// reloadLocked loads the file again and applies it; r.mu is held.
func (r *reloader) reloadLocked(trigger string) *reloadResult {
	r.busy.Store(true)
	defer r.busy.Store(false)
	r.life.reloadBegin()
	defer func() { r.life.reloadEnd(r.cfg.Load()) }()
	res := &reloadResult{Trigger: trigger}
	cfg, err := loadRunConfig(r.log, r.f)
	if err == nil {
		err = r.sched.Update(cfg)
	}
	res.At = time.Now()
	if err != nil {
		res.Errors = diagnosticLines(err)
		r.last.Store(res)
		r.reloads.WithLabelValues("failure").Inc()
		r.lastOK.Set(0)
		r.log.Error("reload failed; keeping the running configuration", "trigger", trigger, "error", err)
		return res
	}
	for _, w := range cfg.Warnings {
		res.Warnings = append(res.Warnings, w.String())
	}
	r.life.reloadApplied(cfg)
	r.rec.Update(cfg)
	if err := r.syn.update(cfg); err != nil {
		r.log.Warn("SYN probe targets not updated", "error", err)
	}
	res.OK = true
	res.Checks = r.sched.Stats().Checks
	res.Pending = pendingChecks(r.sched)
	r.cfg.Store(cfg)
	r.loadedAt.Store(&res.At)
	r.last.Store(res)
	r.reloads.WithLabelValues("success").Inc()
	r.lastOK.Set(1)
	r.lastTime.Set(float64(res.At.UnixNano()) / 1e9)
	r.log.Info("configuration reloaded", "trigger", trigger, "config", r.f.file, "checks", res.Checks, "checks_pending", res.Pending)
	return res
}

// pendingChecks counts the distinct checks that have not completed an
// attempt: right after a reload, the changed and added ones (a check kept
// across the reload keeps its state), and any still before its first.
func pendingChecks(s *prober.Scheduler) int {
	seen := map[string]bool{}
	n := 0
	for _, h := range s.Health() {
		for _, c := range h.Checkers {
			k := c.Checker + "|" + c.Pos.String()
			if seen[k] {
				continue
			}
			seen[k] = true
			if !c.HasRun {
				n++
			}
		}
	}
	return n
}

// diagnosticLines returns the FILE:LINE diagnostics of a failed load, or
// the error's lines when it is not a configuration error.
func diagnosticLines(err error) []string {
	var ce *config.Error
	if errors.As(err, &ce) {
		out := make([]string, 0, len(ce.Diagnostics))
		for _, d := range ce.Diagnostics {
			out = append(out, d.String())
		}
		return out
	}
	return strings.Split(err.Error(), "\n")
}
