package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/notify"
	"github.com/lvsprobe/lvsprobe/internal/prober"
	"github.com/lvsprobe/lvsprobe/internal/sdnotify"
)

// lifecycle is what makes `lvsprobe run` a service: it runs the
// configuration's notify and quorum scripts, and speaks sd_notify to
// systemd (READY after the first reconcile pass, RELOADING/READY around
// reloads, STOPPING, and a watchdog fed only while the check scheduling
// loop is alive). A nil *lifecycle does nothing.
type lifecycle struct {
	log     *slog.Logger
	sd      *sdnotify.Notifier // nil outside systemd
	scripts *notify.Runner
	sched   *prober.Scheduler
	cfg     atomic.Pointer[config.Config] // the running configuration
}

// startLifecycle starts the scripts' runner and the systemd conversation;
// goFn runs a goroutine the caller waits for (they end with ctx).
func startLifecycle(ctx context.Context, log *slog.Logger, cfg *config.Config, sched *prober.Scheduler, rec *ipvs.Reconciler,
	reg prometheus.Registerer, goFn func(func())) *lifecycle {
	d := &lifecycle{
		log:     log.With("component", "daemon"),
		sd:      sdnotify.FromEnv(),
		scripts: notify.New(notify.Options{Log: log}),
		sched:   sched,
	}
	wd, wdOK := sdnotify.WatchdogInterval()
	// Scripts must not speak for the daemon.
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		_ = os.Unsetenv(v)
	}
	_ = d.scripts.Update(cfg) // refusals are logged with FILE:LINE
	d.cfg.Store(cfg)
	if reg != nil {
		reg.MustRegister(notify.NewCollector(d.scripts))
	}
	rec.OnQuorum(func(c ipvs.QuorumChange) {
		d.log.Info("quorum "+upDown(c.Up), "virtual_server", c.VirtualServer, "weight", c.Weight, "start", c.Start)
		d.scripts.Quorum(c.VirtualServer, c.Up)
	})
	goFn(func() { _ = d.scripts.Run(ctx) })
	goFn(func() {
		select {
		case <-ctx.Done():
		case <-rec.Passed():
			d.ready(cfg)
		}
		<-ctx.Done()
		d.notifyErr(d.sd.Stopping())
		d.omega()
	})
	if wdOK && d.sd != nil {
		d.log.Info("systemd watchdog", "interval", wd)
		goFn(func() {
			d.sd.Watchdog(ctx, wd, d.schedulerAlive(max(wd/2, minStale)), func(err error) {
				d.log.Warn("watchdog ping held back", "error", err)
			})
		})
	}
	return d
}

// upDown names a state.
func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// minStale is the youngest heartbeat age the watchdog calls a stall: a
// live scheduling loop goes round at least every second, and a busy
// director may be late by some more.
const minStale = 3 * time.Second

// schedulerAlive returns the watchdog's liveness test: the check
// scheduling loop went round within stale (it does every second while
// alive; keepalived #2523 is a checker that hangs while the director
// keeps serving a stale table).
func (d *lifecycle) schedulerAlive(stale time.Duration) func() error {
	return func() error {
		hb := d.sched.Heartbeat()
		if hb.IsZero() {
			return nil // not started yet: TimeoutStartSec covers a start that hangs
		}
		if age := time.Since(hb); age > stale {
			return fmt.Errorf("%w: the check scheduling loop last went round %v ago", sdnotify.ErrNotAlive, age.Round(time.Millisecond))
		}
		return nil
	}
}

// ready tells systemd the daemon serves cfg.
func (d *lifecycle) ready(cfg *config.Config) {
	if d == nil {
		return
	}
	d.notifyErr(d.sd.Ready(fmt.Sprintf("%d virtual servers, %d checks", len(cfg.VirtualServers), d.sched.Stats().Checks)))
}

// transitions passes every transition from in to the returned channel,
// running notify_up/notify_down on the way (the runner dedupes repeated
// health, such as a first verdict that agrees with the start state).
func (d *lifecycle) transitions(in <-chan prober.Transition, goFn func(func())) <-chan prober.Transition {
	if d == nil {
		return in
	}
	out := make(chan prober.Transition)
	goFn(func() {
		defer close(out)
		for t := range in {
			d.scripts.RealServer(t.Key, t.Up)
			out <- t
		}
	})
	return out
}

// reloadBegin tells systemd a reload started.
func (d *lifecycle) reloadBegin() {
	if d == nil {
		return
	}
	d.notifyErr(d.sd.Reloading())
}

// reloadApplied takes the scripts of a configuration that loaded; call it
// before the reconciler sees cfg, so quorum changes of new virtual
// servers find their scripts.
func (d *lifecycle) reloadApplied(cfg *config.Config) {
	if d == nil {
		return
	}
	_ = d.scripts.Update(cfg)
	d.cfg.Store(cfg)
}

// omega runs, at shutdown, the scripts keepalived runs for virtual
// servers with `omega` when it removes their services: only when
// lvs_flush_on_stop is set (otherwise lvsprobe leaves the table, as
// keepalived --dont-release-ipvs, which runs none); a full flush (no
// argument) runs only quorum_down, as keepalived's does.
func (d *lifecycle) omega() {
	cfg := d.cfg.Load()
	if cfg.Global.LVSFlushOnStop == "" {
		return
	}
	var ids []string
	for _, vs := range cfg.VirtualServers {
		if vs.Omega {
			ids = append(ids, vs.ID())
		}
	}
	if len(ids) > 0 {
		d.scripts.Stopping(ids, cfg.Global.LVSFlushOnStop != "FULL")
	}
}

// reloadEnd tells systemd the reload is over: the daemon serves cfg (the
// new configuration, or the one kept after a failed reload).
func (d *lifecycle) reloadEnd(cfg *config.Config) {
	if d == nil || cfg == nil {
		return
	}
	d.ready(cfg)
}

// notifyErr logs a failed sd_notify once per kind of failure is not worth
// the bookkeeping: it is rare (systemd gone) and logged at debug level.
func (d *lifecycle) notifyErr(err error) {
	if err != nil {
		d.log.Debug("sd_notify", "error", err)
	}
}
