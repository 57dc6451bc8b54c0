package ipvs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// rsHealth is the health of a real server: reported by SetHealth, or
// assumed when the reconciler first saw it.
type rsHealth struct {
	up       bool
	reported bool
}

// DefaultResyncInterval is how often a running Reconciler compares the
// kernel's table with the desired one when nothing changes, which bounds
// how long drift (someone ran ipvsadm -d) lasts.
const DefaultResyncInterval = 5 * time.Second

// stopTimeout bounds the lvs_flush_on_stop work done after Run's context
// is cancelled.
const stopTimeout = 30 * time.Second

// ReconcilerOptions tune a Reconciler. The zero value is usable.
type ReconcilerOptions struct {
	Log            *slog.Logger  // nil: discard
	ResyncInterval time.Duration // drift repair period; 0: DefaultResyncInterval
	RetryBase      time.Duration // first delay after a failed write; 0: DefaultRetryBase
	RetryMax       time.Duration // longest delay between tries; 0: DefaultRetryMax

	now func() time.Time // clock, replaced by tests
}

// Reconciler keeps the IPVS services of one configuration in step with
// the health of their real servers, the way keepalived 2.2.7's checker
// does (see buildVS for the rules), through a Backend.
//
// It owns exactly the services its configurations name: services of a
// configuration given to Update that the new one no longer names are
// deleted; every other service in the table is never read beyond the
// service list, and never written.
//
// Health of a real server is, in order: the last value given to
// SetHealth; else, decided once when the reconciler first sees the real
// server, its assumed health: alive, unless one of its checkers has alpha
// set, in which case it is alive only if the kernel already holds it with
// a weight above 0. That rule lets a restart adopt the table it finds
// without removing a healthy real server (nothing is re-added or removed
// until a check says otherwise), while a fresh start with alpha keeps
// real servers out until their checks pass.
//
// All methods are safe for concurrent use.
type Reconciler struct {
	b      Backend
	log    *slog.Logger
	resync time.Duration
	now    func() time.Time
	wake   chan struct{} // capacity 1: coalesced change notifications

	pass  sync.Mutex // one pass at a time; held across backend calls
	cache table      // the owned table after the last clean pass, or nil; guarded by pass

	mu       sync.Mutex // guards everything below; never held across backend calls
	cfg      *config.Config
	health   map[string]map[rsAddr]rsHealth    // by VirtualServer.ID(), then real server
	weights  map[string]map[netip.AddrPort]int // effective weights set by checks (weight.go), same keys
	quorum   map[string]bool                   // by VirtualServer.ID()
	retired  map[config.ServiceKey]bool        // owned before a reload, not any more: to delete
	started  bool                              // the first pass (lvs_flush) has run
	timeouts Timeouts                          // last set, zero if never
	retry    *backoff
	stats    Stats
	desired  table               // the desired table of the last pass, for metrics; an incremental pass replaces its dirty services' entries
	dirty    map[string]struct{} // virtual servers (ID) whose health or weight changed since the last pass
	allDirty bool                // the configuration changed since the last full pass
	index    *vsIndex            // r.cfg's virtual servers by ID and shared service; nil until an incremental pass needs it

	yield     func()             // between services of a pass: runtime.Gosched (see yield.go)
	onQuorum  func(QuorumChange) // see OnQuorum
	quorumOut []QuorumChange     // decided, not yet delivered
	passed    chan struct{}      // see Passed; nil until asked for
	passDone  bool               // a pass has finished
}

// NewReconciler returns a Reconciler that applies cfg through b. It does
// nothing until Reconcile or Run is called.
func NewReconciler(b Backend, cfg *config.Config, opts ReconcilerOptions) *Reconciler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = DefaultRetryBase
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = DefaultRetryMax
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if cfg == nil {
		cfg = &config.Config{}
	}
	return &Reconciler{
		b:       b,
		log:     opts.Log.With("component", "ipvs"),
		resync:  opts.ResyncInterval,
		now:     opts.now,
		wake:    make(chan struct{}, 1),
		cfg:     cfg,
		health:  make(map[string]map[rsAddr]rsHealth),
		quorum:  make(map[string]bool),
		retired: make(map[config.ServiceKey]bool),
		dirty:   make(map[string]struct{}),
		retry:   newBackoff(opts.RetryBase, opts.RetryMax),
		stats:   Stats{Ops: make(map[OpKind]uint64)},
		yield:   runtime.Gosched,
	}
}

// notify wakes Run without blocking; notifications coalesce.
func (r *Reconciler) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// SetHealth records the health of a real server as its checks decided
// it. It never blocks on the backend: a running Run applies it on its next
// pass, and many changes made in between are applied together.
func (r *Reconciler) SetHealth(key config.RealServerKey, up bool) {
	r.mu.Lock()
	hv := r.health[key.VirtualServer]
	if hv == nil {
		hv = make(map[rsAddr]rsHealth)
		r.health[key.VirtualServer] = hv
	}
	ap := rsAddrOf(key.Addr, key.Port)
	old, had := hv[ap]
	hv[ap] = rsHealth{up: up, reported: true}
	if !had || old.up != up {
		r.dirty[key.VirtualServer] = struct{}{}
	}
	r.mu.Unlock()
	if !old.reported || old.up != up {
		r.notify()
	}
}

// Update replaces the configuration (a reload). Health, assumed health
// and quorum state of the virtual and real servers that remain are kept;
// services the new configuration no longer names are deleted on the next
// pass. Only entries whose desired state changed are written.
func (r *Reconciler) Update(cfg *config.Config) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	r.mu.Lock()
	oldIDs := configServiceIDs(r.cfg)
	newIDs := configServiceIDs(cfg)
	for id := range oldIDs {
		if !newIDs[id] {
			r.retired[id] = true
		}
	}
	for id := range newIDs {
		delete(r.retired, id)
	}
	r.forgetRemoved(cfg)
	r.cfg = cfg
	r.allDirty, r.index = true, nil
	r.mu.Unlock()
	r.notify()
}

// forgetRemoved drops the health, assumed health and quorum state of the
// real and virtual servers that cfg no longer has. It compares each
// virtual server's real-server list with its previous one, so a reload
// that changes little costs little. r.mu must be held.
func (r *Reconciler) forgetRemoved(cfg *config.Config) {
	next := make(map[string]*config.VirtualServer, len(cfg.VirtualServers))
	for _, vs := range cfg.VirtualServers {
		next[vs.ID()] = vs
	}
	for _, old := range r.cfg.VirtualServers {
		id := old.ID()
		nvs := next[id]
		if nvs == nil {
			delete(r.quorum, id)
			delete(r.health, id)
			continue
		}
		hv := r.health[id]
		if hv == nil || sameRealServerList(old, nvs) {
			continue
		}
		keep := make(map[rsAddr]bool, len(nvs.RealServers))
		for _, rs := range nvs.RealServers {
			keep[rsAddrOf(rs.Addr, rs.Port)] = true
		}
		for ap := range hv {
			if !keep[ap] {
				delete(hv, ap)
			}
		}
	}
}

// sameRealServerList reports whether a and b list the same real servers
// (address and port) in the same order.
func sameRealServerList(a, b *config.VirtualServer) bool {
	if len(a.RealServers) != len(b.RealServers) {
		return false
	}
	for i, rs := range a.RealServers {
		if rs.Addr != b.RealServers[i].Addr || rs.Port != b.RealServers[i].Port {
			return false
		}
	}
	return true
}

// Stats returns a copy of the counters.
func (r *Reconciler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats.clone()
	s.Pending = len(r.retry.failing)
	return s
}

// QuorumUp returns the quorum state of the virtual server with the given
// ID (VirtualServer.ID()); known is false before the first pass that
// evaluated it.
func (r *Reconciler) QuorumUp(vsID string) (up, known bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	up, known = r.quorum[vsID]
	return up, known
}

// Run reconciles at once, then on every change (SetHealth, Update; see
// Apply), every ResyncInterval (see Reconcile: this read bounds how long
// drift lasts), and when a failed write is due for a retry, until ctx is
// done. Then it applies lvs_flush_on_stop (see flushOnStop) and
// returns that step's error, or nil.
func (r *Reconciler) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	read := true
	lastRead := r.now()
	for {
		if read {
			lastRead = r.now()
		}
		if err := r.reconcile(ctx, read); err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile pass incomplete", "error", err)
		}
		timer.Reset(r.nextWait(lastRead))
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			defer cancel()
			return r.flushOnStop(stopCtx)
		case <-r.wake:
			// A change: apply it from the cached table at once. A
			// resync that is due anyway (a steady stream of changes
			// must not postpone drift repair) follows it: reading and
			// comparing the whole table first put that pass (tens of
			// ms at 10,000 real servers, more on a loaded machine)
			// between a detection and its write.
			read = r.now().Sub(lastRead) >= r.resync
			if read {
				if err := r.reconcile(ctx, false); err != nil && ctx.Err() == nil {
					r.log.Warn("reconcile pass incomplete", "error", err)
				}
			}
		case <-timer.C:
			read = true
		}
	}
}

// nextWait returns how long Run sleeps when nothing changes: until the
// next resync, a resync interval after lastRead, or a retry due sooner.
func (r *Reconciler) nextWait(lastRead time.Time) time.Duration {
	r.mu.Lock()
	e := r.retry.earliest()
	r.mu.Unlock()
	wait := max(r.resync-r.now().Sub(lastRead), time.Millisecond)
	if !e.IsZero() {
		wait = min(wait, max(e.Sub(r.now()), time.Millisecond))
	}
	return wait
}

// configServiceIDs returns the serviceIDs cfg owns.
func configServiceIDs(cfg *config.Config) map[config.ServiceKey]bool {
	ids := make(map[config.ServiceKey]bool)
	for _, vs := range cfg.VirtualServers {
		for _, k := range serviceKeys(vs) {
			ids[serviceID(k)] = true
		}
	}
	return ids
}

// Reconcile runs one pass: it reads the owned part of the table, computes
// the desired table from the configuration and health, and writes the
// difference. A write that fails is logged, counted and retried on a
// later pass after an exponential backoff; the rest of the pass goes on.
// The error joins every failure of this pass (nil when the table is
// converged or only waiting on backoff).
func (r *Reconciler) Reconcile(ctx context.Context) error { return r.reconcile(ctx, true) }

// Apply runs one pass like Reconcile, but against the table as the last
// pass read and then wrote it, without reading it again (unless no pass
// has read it yet, or a write failed since). It is what Run does on a
// health change or a reload: the cost is the changes, not the table's
// size. When only health or weights changed since the last clean pass,
// it recomputes and compares only the virtual servers they belong to
// (see applyDirty). Drift made by others is seen by the next Reconcile.
func (r *Reconciler) Apply(ctx context.Context) error { return r.reconcile(ctx, false) }

func (r *Reconciler) reconcile(ctx context.Context, read bool) error {
	r.pass.Lock()
	defer r.pass.Unlock()

	if !read && r.cache != nil {
		if done, err := r.applyDirty(ctx); done {
			return err
		}
	}

	r.mu.Lock()
	r.stats.Passes++
	owned := configServiceIDs(r.cfg)
	for id := range r.retired {
		owned[id] = true
	}
	first := !r.started
	flush := first && r.cfg.Global.LVSFlush
	r.mu.Unlock()

	actual := r.cache
	if read || actual == nil {
		var err error
		if actual, err = r.readActual(ctx, owned); err != nil {
			r.cache = nil
			return err
		}
	}
	r.cache = nil // until this pass has written without a failure
	var errs []error
	if flush {
		errs = append(errs, r.flushAtStart(ctx, actual)...)
	}

	r.mu.Lock()
	desired := r.desiredLocked(actual)
	r.desired = desired
	retired := make([]config.ServiceKey, 0, len(r.retired))
	for id := range r.retired {
		retired = append(retired, id)
	}
	r.started = true
	r.mu.Unlock()

	// After a clean pass the owned table is desired: every difference
	// was written and applied to actual. Keeping desired as the cache
	// holds one table instead of two (2–4 MB at 10,000 real servers).
	// The next pass mutates it only after it has replaced r.desired, or
	// (applyDirty) the entries it mutates, and readers of r.desired hold
	// r.mu.
	// A write deferred while its target backs off leaves actual, not
	// desired, as the table: the pass that retries it must see it
	// missing.
	return r.finishPass(ctx, desired, actual, retired, desired, actual, errs)
}

// finishPass writes the difference between desired and actual (see
// apply), then the timeouts, and delivers the quorum changes. When the
// pass is clean it keeps as the cache (the owned table as it now is)
// next, or ifDeferred when a write was deferred (nil: none). errs are the
// pass's errors so far.
func (r *Reconciler) finishPass(ctx context.Context, desired, actual table, retired []config.ServiceKey, next, ifDeferred table, errs []error) error {
	r.mu.Lock()
	deferred := r.stats.Deferred
	r.mu.Unlock()
	errs = append(errs, r.apply(ctx, desired, actual, retired)...)
	errs = keep(errs, r.applyTimeouts(ctx))
	r.deliverQuorum() // after the table changed, as keepalived runs quorum scripts
	r.markPassed()
	if len(errs) == 0 && ctx.Err() == nil {
		r.mu.Lock()
		if r.stats.Deferred != deferred {
			next = ifDeferred
		}
		r.mu.Unlock()
		r.cache = next
	}
	return errors.Join(errs...)
}

// applyTimeouts sets lvs_timeouts when the configuration names them and
// they differ from what this reconciler last set.
func (r *Reconciler) applyTimeouts(ctx context.Context) error {
	ts, ok := r.b.(TimeoutSetter)
	if !ok {
		return nil
	}
	r.mu.Lock()
	g := r.cfg.Global
	want := Timeouts{TCP: g.LVSTimeoutTCP, TCPFin: g.LVSTimeoutTCPFin, UDP: g.LVSTimeoutUDP}
	done := want == r.timeouts
	r.mu.Unlock()
	if want.IsZero() || done {
		return nil
	}
	err := r.do(ctx, OpSetTimeouts, config.ServiceKey{}, nil, func() error {
		err := ts.SetTimeouts(ctx, want)
		r.count(OpSetTimeouts, err)
		return err
	})
	if err == nil {
		r.mu.Lock()
		r.timeouts = want
		r.mu.Unlock()
	}
	return err
}

// readActual reads the owned services and their destinations.
func (r *Reconciler) readActual(ctx context.Context, owned map[config.ServiceKey]bool) (table, error) {
	svcs, err := r.b.Services(ctx)
	r.countRead(err)
	if err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	actual := make(table)
	for _, s := range svcs {
		if !owned[serviceID(s.ServiceKey)] {
			continue
		}
		ts := actual.service(s)
		dests, err := r.b.Destinations(ctx, s.ServiceKey)
		r.countRead(err)
		if err != nil {
			return nil, fmt.Errorf("read destinations of %s: %w", s.ServiceKey, err)
		}
		for _, d := range dests {
			d.Addr = d.Addr.Unmap()
			ts.dests.put(d)
		}
		r.yield()
	}
	return actual, nil
}

func (r *Reconciler) countRead(err error) {
	r.mu.Lock()
	r.stats.Reads++
	if err != nil {
		r.stats.Errors++
	}
	r.mu.Unlock()
}

// desiredLocked computes the desired table, deciding the assumed health
// of real servers seen for the first time and advancing quorum states:
// stepLocked for every virtual server. Every virtual server is then
// clean. r.mu must be held.
func (r *Reconciler) desiredLocked(actual table) table {
	desired := make(table)
	for _, vs := range r.cfg.VirtualServers {
		r.stepLocked(desired, vs, actual)
	}
	clear(r.dirty)
	r.allDirty = false
	return desired
}

// stepLocked adds the desired services of vs to desired (buildVS over
// its real servers' health and effective weights), deciding the assumed
// health of its real servers seen for the first time (actual is the
// table as the pass found it) and advancing its quorum state. A full pass
// runs it for every virtual server, an incremental one (applyDirty) for
// the dirty ones. r.mu must be held.
func (r *Reconciler) stepLocked(desired table, vs *config.VirtualServer, actual table) {
	vsID := vs.ID()
	alive := make([]bool, len(vs.RealServers))
	hv := r.health[vsID]
	if hv == nil {
		hv = make(map[rsAddr]rsHealth, len(vs.RealServers))
		r.health[vsID] = hv
	}
	for i, rs := range vs.RealServers {
		ap := rsAddrOf(rs.Addr, rs.Port) // with vsID, the RealServerKey
		h, ok := hv[ap]
		if !ok {
			h.up = !hasAlpha(rs) || r.presentInKernel(actual, vs, rs)
			hv[ap] = h
		}
		alive[i] = h.up
	}
	weights := r.weightsLocked(vs)
	var prev *bool
	if q, ok := r.quorum[vsID]; ok {
		prev = &q
	}
	res := buildVS(desired, vs, alive, weights, prev)
	if prev != nil && *prev != res.QuorumUp {
		r.log.Info("quorum changed", "virtual_server", vsID, "up", res.QuorumUp, "sorry_server", res.SorryActive)
	}
	r.noteQuorumLocked(vs, prev, res)
	r.quorum[vsID] = res.QuorumUp
	if res.Collisions > 0 {
		r.log.Warn("real servers share a destination; the first one wins", "virtual_server", vsID, "dropped", res.Collisions)
	}
}

// presentInKernel reports whether the kernel holds rs in service (weight
// above 0) in one of the services of vs.
func (r *Reconciler) presentInKernel(actual table, vs *config.VirtualServer, rs *config.RealServer) bool {
	m := rs.Method
	if m == "" {
		m = vs.Method
	}
	for _, k := range serviceKeys(vs) {
		ts := actual[serviceID(k)]
		if ts == nil {
			continue
		}
		if d, ok := ts.dests[destKey{Addr: rs.Addr.Unmap(), Port: destPort(k, m, rs.Port)}]; ok && d.Weight > 0 {
			return true
		}
	}
	return false
}
