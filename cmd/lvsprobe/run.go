package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/prober"
)

func init() {
	register(command{name: "run", summary: "check the real servers and keep IPVS in step (--ipvs=dry-run prints ipvsadm commands)", run: cmdRun})
}

// runFlags are the flags of `lvsprobe run`.
type runFlags struct {
	file          string
	configID      string
	ipvs          string
	maxConcurrent int
	staticConc    bool
	rate          float64
	syn           synFlags
	metricsListen string
	controlSocket string
	detector      string
	passive       passiveFlags
	keepCaps      string
}

func cmdRun(ctx context.Context, e *env, args []string) error {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&f.file, "f", defaultConfigPath, "keepalived configuration `file`")
	fs.StringVar(&f.configID, "config-id", "", "configuration `id` selecting @ID lines (keepalived -i)")
	fs.StringVar(&f.ipvs, "ipvs", "kernel", "IPVS backend: kernel, or dry-run to print the ipvsadm commands instead")
	fs.IntVar(&f.maxConcurrent, "max-concurrent", prober.DefaultMaxConcurrent, "checks in flight at once (past its first 100 ms an attempt counts only on a starved director)")
	fs.BoolVar(&f.staticConc, "static-concurrency", false, "keep max-concurrent checks in flight instead of adapting the limit when the CPU is starved")
	fs.Float64Var(&f.rate, "rate", prober.DefaultRate, "check attempts started per second at most (negative: no cap)")
	f.syn.register(fs)
	registerDetectorFlag(fs, &f.detector)
	f.passive.register(fs)
	fs.StringVar(&f.metricsListen, "metrics-listen", defaultMetricsListen, "`address` serving Prometheus metrics on /metrics (\"\" disables)")
	fs.StringVar(&f.controlSocket, "control-socket", defaultControlSocket, "unix socket `path` for lvsprobe status and lvsprobe reload (\"\" disables)")
	fs.StringVar(&f.keepCaps, "keep-capabilities", "", "capabilities to keep after start-up besides those lvsprobe needs (`list` such as cap_setuid,cap_kill; \"all\": drop none)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: lvsprobe run [-f FILE] [--config-id ID] [--ipvs=kernel|dry-run] [--max-concurrent N] [--static-concurrency] [--rate N] [--syn-probe=false] [--syn-probe-interval D] [--syn-probe-pps N] [--syn-probe-ports LO-HI] [--syn-probe-rst=false] [--detector=fast|compatible|off] [--passive=auto|off] [--passive-links IF,...] [--metrics-listen ADDR] [--control-socket PATH] [--keep-capabilities LIST|all]")
		fs.PrintDefaults()
	}
	if stop, err := parseArgs(fs, args); stop {
		return err
	}
	if (f.ipvs != "kernel" && f.ipvs != "dry-run") || f.maxConcurrent <= 0 || f.rate == 0 || !validDetector(f.detector) {
		fs.Usage()
		return &exitError{code: 2}
	}
	if err := f.syn.check(); err != nil {
		fmt.Fprintln(e.stderr, err)
		fs.Usage()
		return &exitError{code: 2}
	}
	if err := f.passive.check(); err != nil {
		fmt.Fprintln(e.stderr, err)
		fs.Usage()
		return &exitError{code: 2}
	}
	if _, _, err := parseKeepCapabilities(f.keepCaps); err != nil {
		fmt.Fprintln(e.stderr, err)
		fs.Usage()
		return &exitError{code: 2}
	}
	if err := checkMetricsListen(f.metricsListen); err != nil {
		fmt.Fprintln(e.stderr, err)
		fs.Usage()
		return &exitError{code: 2}
	}
	return runProber(ctx, e, f)
}

// runProber wires the configuration, the scheduler and the reconciler
// together until ctx is done; SIGHUP reloads the configuration.
func runProber(ctx context.Context, e *env, f runFlags) error {
	setDaemonGC(e.log)
	defer startProfiles(ctx, e.log)() // LVSPROBE_PROFILE_DIR (profile.go)
	cfg, err := loadRunConfig(e.log, f)
	if err != nil {
		return err
	}
	var b ipvs.Backend
	if f.ipvs == "dry-run" {
		b = ipvs.NewDryRun(e.log, e.stdout)
	} else {
		k, err := ipvs.NewKernel(e.log)
		if err != nil {
			return fmt.Errorf("open ipvs: %w", err)
		}
		b = k
	}
	defer b.Close()

	sched, err := prober.NewScheduler(cfg, prober.SchedulerOptions{
		Log:               e.log.With("component", "prober"),
		MaxConcurrent:     f.maxConcurrent,
		StaticConcurrency: f.staticConc,
		Rate:              f.rate,
		Checker: prober.CheckerOptions{SSL: cfg.Global.SSL, ScriptUser: cfg.Global.ScriptUser, ScriptGroup: cfg.Global.ScriptGroup,
			ScriptSecurity: cfg.Global.EnableScriptSecurity},
		FirstVerdict: true, // the reconciler assumes a health until told
	})
	if err != nil {
		return fmt.Errorf("start checks: %w", err)
	}
	rec := ipvs.NewReconciler(b, cfg, ipvs.ReconcilerOptions{Log: e.log})
	sched.OnWeight(rec.SetWeight) // MISC_CHECK misc_dynamic and FILE_CHECK weights
	reg := newMetricsRegistry()
	reg.MustRegister(prober.NewSchedulerCollector(sched), ipvs.NewCollector(rec))
	det, err := startDetector(e.log, f.detector, sched, reg)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	var recErr error
	life := startLifecycle(ctx, e.log, cfg, sched, rec, reg, wg.Go) // before rec.Run: quorum at start
	// The reconciler writes the table as the configuration and the
	// lifecycle have it (every real server up unless alpha, as keepalived
	// at start) before the SYN prober's eBPF loads: that load took 0.4-8 s
	// in the emulated kernel lab, and the first write waited for it.
	wg.Go(func() { recErr = rec.Run(ctx) })
	syn := startSynProbe(ctx, e.log, f.syn, cfg, reg)
	defer syn.stop()
	syn.feedDetector(det)
	steady := latenessWindow(e.log, sched) // LVSPROBE_LATENESS_AFTER (benchfigures.go)
	e.log.Info("lvsprobe running", "config", f.file, "ipvs", f.ipvs,
		"virtual_servers", len(cfg.VirtualServers), "checks", sched.Stats().Checks)
	wg.Go(func() { _ = sched.Run(ctx) })
	changes := healthChanges(ctx, det, sched, wg.Go)
	changes = life.transitions(changes, wg.Go) // notify_up/notify_down
	wg.Go(func() { forwardHealth(e.log, changes, rec) })
	rl := newReloader(e.log, f, cfg, sched, rec, syn, reg)
	// The passive observer loads in the background: loading and attaching
	// its programs takes seconds on a slow or busy machine (8-20 s in the
	// emulated kernel lab), and a restarted daemon must not wait for it
	// before its first checks. The capabilities it needs go after it.
	pas := startPassiveLater(ctx, e.log, f.passive, f.syn, cfg, reg, det, func() *config.Config { c, _ := rl.config(); return c })
	defer pas.stop()
	rl.life = life
	ctl := &controlServer{log: e.log.With("component", "control"), file: f.file, rl: rl, detect: detectorStatus(det)}
	wg.Go(func() { rl.onHUP(ctx) })
	ctlListener := ctl.listen(ctx, f.controlSocket)
	if e.dropCaps {
		wg.Go(func() {
			passiveOn := pas.wait() != nil // loads with every capability
			bpfInUse := syn.usesBPF() || passiveOn
			dropCapabilities(e.log.With("component", "privileges"), f.keepCaps, cfg, bpfInUse) // privileges.go
		})
	}
	wg.Go(func() { ctl.serveOn(ctx, ctlListener, f.controlSocket) })
	wg.Go(func() { serveMetrics(ctx, e.log.With("component", "metrics"), f.metricsListen, reg) })
	wg.Wait()
	st, l := sched.Stats(), sched.Lateness()
	stopped := []any{"attempts", st.Attempts, "failed", st.Failures, "transitions", st.Transitions,
		"lateness_p50", l.Quantile(0.5), "lateness_p99", l.Quantile(0.99), "lateness_max", l.Max}
	stopped = append(stopped, sched.LimiterStats().LogAttrs()...)
	e.log.Info("lvsprobe stopped", append(append(stopped, steady()...), memoryAttrs()...)...)
	if recErr != nil {
		return fmt.Errorf("stop ipvs: %w", recErr)
	}
	return nil
}

// loadRunConfig loads the configuration and logs its warnings.
func loadRunConfig(log *slog.Logger, f runFlags) (*config.Config, error) {
	cfg, err := config.Load(f.file, config.LoadOptions{ConfigID: f.configID, Log: log})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", f.file, err)
	}
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w.String())
	}
	return cfg, nil
}

// forwardHealth logs every transition and hands it to the reconciler,
// until the scheduler stops.
func forwardHealth(log *slog.Logger, changes <-chan prober.Transition, rec *ipvs.Reconciler) {
	for t := range changes {
		state := "down"
		if t.Up {
			state = "up"
		}
		log.Info("real server "+state, append([]any{"real_server", t.Key.String(), "reason", t.Reason}, t.Detection.LogAttrs()...)...)
		rec.SetHealth(t.Key, t.Up)
	}
}
