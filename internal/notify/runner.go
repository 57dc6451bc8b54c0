package notify

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Defaults for [Options].
const (
	// DefaultTimeout bounds one run of a script (keepalived's default
	// startup/shutdown script timeout; it has none for notify scripts).
	DefaultTimeout = 10 * time.Second
	// DefaultGrace is how long a timed-out script has between SIGTERM and
	// SIGKILL.
	DefaultGrace = time.Second
	// DefaultWorkers is how many scripts run at once.
	DefaultWorkers = 4
	// DefaultQueueLen is how many notifications wait at most, over all
	// workers.
	DefaultQueueLen = 1024
)

// Kind names a script slot of the configuration.
type Kind string

// The four kinds of script.
const (
	NotifyUp   Kind = "notify_up"
	NotifyDown Kind = "notify_down"
	QuorumUp   Kind = "quorum_up"
	QuorumDown Kind = "quorum_down"
)

// Options tune a Runner. The zero value is usable.
type Options struct {
	Log      *slog.Logger  // nil: discard
	Timeout  time.Duration // one run's limit; 0: DefaultTimeout
	Grace    time.Duration // SIGTERM to SIGKILL; 0: DefaultGrace
	Workers  int           // scripts running at once; 0: DefaultWorkers
	QueueLen int           // notifications waiting at most; 0: DefaultQueueLen
	Path     string        // search path for bare program names; "": $PATH
}

// Stats counts what a Runner did.
type Stats struct {
	Succeeded uint64 // runs that exited 0
	Failed    uint64 // runs that could not start or exited non-zero
	TimedOut  uint64 // runs killed at the timeout
	Dropped   uint64 // notifications dropped: queue full, or stopped before running
	Refused   int    // scripts of the current configuration refused (not found, insecure, no user)
	Queued    int    // notifications waiting now
}

// job is one script to run.
type job struct {
	kind   Kind
	target string // the real or virtual server, for logs
	cmd    *Command
}

// rsEntry is what the Runner knows of one real server that has a script
// or starts down (alpha); a real server with neither has none, so a
// configuration without notify scripts costs no memory per real server.
type rsEntry struct {
	up, down *Command
	initial  bool // health before any check: down when a checker has alpha
}

// vsEntry holds a virtual server's quorum scripts.
type vsEntry struct{ up, down *Command }

// Runner runs the notify and quorum scripts of the current configuration
// when told of a change. Its methods never block on a script: work goes
// to a bounded queue served by a few workers, and notifications for the
// same real or virtual server run in the order they were made.
//
// All methods are safe for concurrent use.
type Runner struct {
	log    *slog.Logger
	opts   Options
	queues []chan job

	mu     sync.Mutex
	cfg    *config.Config // the configuration of the last Update
	rs     map[config.RealServerKey]*rsEntry
	vs     map[string]*vsEntry
	health map[config.RealServerKey]bool // last health seen, only where it differs from the start state
	refuse int

	ok, failed, timedOut, dropped atomic.Uint64
}

// New returns a Runner with no scripts; call Update with a configuration
// and Run to start the workers.
func New(opts Options) *Runner {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultQueueLen
	}
	if opts.Path == "" {
		opts.Path = os.Getenv("PATH")
	}
	r := &Runner{
		log:    opts.Log.With("component", "notify"),
		opts:   opts,
		rs:     make(map[config.RealServerKey]*rsEntry),
		vs:     make(map[string]*vsEntry),
		health: make(map[config.RealServerKey]bool),
	}
	per := max(opts.QueueLen/opts.Workers, 1)
	for range opts.Workers {
		r.queues = append(r.queues, make(chan job, per))
	}
	return r
}

// Update takes the scripts of cfg, checking each one (see the package
// doc); a refused script is logged with its FILE:LINE and never run. The
// last health of real servers that remain is kept. With global_defs
// rs_init_notifies, notify_up is queued for every real server that starts
// alive (no alpha) and is new: all of them the first time, those a reload
// adds afterwards (keepalived's init_service_rs). It returns the refusals
// joined, for callers that want them; they are already logged.
func (r *Runner) Update(cfg *config.Config) error {
	self := Identity{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Name: "self"}
	p := policy{security: cfg.Global.EnableScriptSecurity, path: r.opts.Path, self: self, setid: canSetID()}
	p.deflt, p.defltErr = defaultIdentity(cfg.Global.ScriptUser, cfg.Global.ScriptGroup, p.security, self)

	var errs []error
	take := func(s *config.Script, kind Kind, target string) *Command {
		if s == nil {
			return nil
		}
		warn := func(msg string) {
			r.log.Warn("script", "kind", kind, "target", target, "at", s.Pos.String(), "warning", msg)
		}
		c, err := resolve(s.Args, s.User, s.Group, p, warn)
		if err != nil {
			r.log.Error("script refused; it will not run", "kind", kind, "target", target, "at", s.Pos.String(), "error", err)
			errs = append(errs, err)
			return nil
		}
		c.Source = s.Pos.String()
		return c
	}
	rs := make(map[config.RealServerKey]*rsEntry)
	vs := make(map[string]*vsEntry)
	for _, v := range cfg.VirtualServers {
		id := v.ID()
		vs[id] = &vsEntry{up: take(v.QuorumUp, QuorumUp, id), down: take(v.QuorumDown, QuorumDown, id)}
		for _, s := range v.RealServers {
			k := s.Key(v)
			e := &rsEntry{initial: true}
			for _, c := range s.Checkers {
				if c.Alpha {
					e.initial = false
				}
			}
			e.up = take(s.NotifyUp, NotifyUp, k.String())
			e.down = take(s.NotifyDown, NotifyDown, k.String())
			if e.up != nil || e.down != nil || !e.initial {
				rs[k] = e
			}
		}
	}
	r.mu.Lock()
	var initial []job
	if cfg.Global.RSInitNotifies {
		// keepalived's rs_init_notifies: notify_up for every real server
		// that starts alive (no alpha), at start and when a reload adds it.
		var known map[config.RealServerKey]bool
		for k, e := range rs {
			if !e.initial || e.up == nil {
				continue
			}
			if known == nil {
				known = rsKeys(r.cfg)
			}
			if !known[k] {
				initial = append(initial, job{kind: NotifyUp, target: k.String(), cmd: e.up})
			}
		}
	}
	r.cfg, r.rs, r.vs, r.refuse = cfg, rs, vs, len(errs)
	if len(r.health) > 0 {
		now := rsKeys(cfg)
		for k := range r.health {
			if !now[k] {
				delete(r.health, k)
			}
		}
	}
	r.mu.Unlock()
	for _, j := range initial {
		r.enqueue(j)
	}
	return errors.Join(errs...)
}

// RealServer reports the health of a real server as its checks decided
// it. When that differs from its previous health (before any report:
// up, or down when one of its checkers has alpha, as the checks start)
// its notify_up or notify_down script is queued. Repeating a health is
// harmless, so every transition the scheduler emits can be passed on.
func (r *Runner) RealServer(key config.RealServerKey, up bool) {
	r.mu.Lock()
	e := r.rs[key]
	initial := e == nil || e.initial
	prev, ok := r.health[key]
	if !ok {
		prev = initial
	}
	// Only a health that differs from the start state is remembered:
	// with every real server up, the map is empty. A real server without
	// scripts is remembered too (while down), so that a reload giving it
	// a script knows its health; Update forgets the keys that left.
	if up == initial {
		delete(r.health, key)
	} else {
		r.health[key] = up
	}
	if e == nil {
		r.mu.Unlock()
		return
	}
	cmd, kind := e.down, NotifyDown
	if up {
		cmd, kind = e.up, NotifyUp
	}
	r.mu.Unlock()
	if prev == up || cmd == nil {
		return
	}
	r.enqueue(job{kind: kind, target: key.String(), cmd: cmd})
}

// Quorum reports a change of a virtual server's quorum state (vsID is
// VirtualServer.ID()) and queues its quorum_up or quorum_down script.
// The caller decides what a change is (the IPVS reconciler's quorum hook
// follows keepalived, including the notifications at start).
func (r *Runner) Quorum(vsID string, up bool) {
	r.mu.Lock()
	e := r.vs[vsID]
	r.mu.Unlock()
	if e == nil {
		return
	}
	cmd, kind := e.down, QuorumDown
	if up {
		cmd, kind = e.up, QuorumUp
	}
	if cmd == nil {
		return
	}
	r.enqueue(job{kind: kind, target: vsID, cmd: cmd})
}

// enqueue hands j to the worker of its target without blocking.
func (r *Runner) enqueue(j job) {
	h := fnv.New32a()
	h.Write([]byte(j.target))
	q := r.queues[h.Sum32()%uint32(len(r.queues))]
	select {
	case q <- j:
	default:
		r.dropped.Add(1)
		r.log.Warn("script queue full; notification dropped", "kind", j.kind, "target", j.target)
	}
}

// Run serves the queue until ctx is done; then a running script is
// killed (SIGTERM, then SIGKILL after the grace period) and waiting
// notifications are dropped.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, q := range r.queues {
		wg.Go(func() { r.work(ctx, q) })
	}
	wg.Wait()
	for _, q := range r.queues {
		for len(q) > 0 {
			<-q
			r.dropped.Add(1)
		}
	}
	return nil
}

// work runs the jobs of one queue in order.
func (r *Runner) work(ctx context.Context, q chan job) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-q:
			if ctx.Err() != nil {
				r.dropped.Add(1)
				return
			}
			r.runJob(ctx, j)
		}
	}
}

// runJob runs one script and logs and counts its outcome.
func (r *Runner) runJob(ctx context.Context, j job) {
	r.runJobWith(ctx, j, execOptions{timeout: r.opts.Timeout, grace: r.opts.Grace})
}

// runJobWith is runJob with explicit limits.
func (r *Runner) runJobWith(ctx context.Context, j job, o execOptions) {
	res := runCommand(ctx, j.cmd, o)
	attrs := []any{"kind", j.kind, "target", j.target, "command", j.cmd.String(), "user", j.cmd.As.Name, "duration", res.duration}
	if len(res.output) > 0 {
		attrs = append(attrs, "output", string(res.output))
	}
	switch {
	case res.err == nil:
		r.ok.Add(1)
		r.log.Info("script ran", attrs...)
	case errors.Is(res.err, ErrTimeout):
		r.timedOut.Add(1)
		r.log.Warn("script killed", append(attrs, "error", res.err)...)
	default:
		r.failed.Add(1)
		r.log.Warn("script failed", append(attrs, "error", res.err)...)
	}
}

// Stats returns the counters.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	refused := r.refuse
	r.mu.Unlock()
	queued := 0
	for _, q := range r.queues {
		queued += len(q)
	}
	return Stats{Succeeded: r.ok.Load(), Failed: r.failed.Load(), TimedOut: r.timedOut.Load(),
		Dropped: r.dropped.Load(), Refused: refused, Queued: queued}
}

// rsKeys returns the keys of cfg's real servers (none for a nil cfg).
func rsKeys(cfg *config.Config) map[config.RealServerKey]bool {
	keys := map[config.RealServerKey]bool{}
	if cfg == nil {
		return keys
	}
	for _, v := range cfg.VirtualServers {
		for _, s := range v.RealServers {
			keys[s.Key(v)] = true
		}
	}
	return keys
}
