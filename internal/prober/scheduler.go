package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Scheduler defaults.
const (
	DefaultMaxConcurrent = 1024            // checks in flight at once
	DefaultRate          = 20000           // check attempts started per second, all checkers together
	DefaultStartDelay    = 1 * time.Second // keepalived's BOOTSTRAP_DELAY before the first check (plus warmup)
)

// SchedulerOptions tune a [Scheduler]. The zero value is usable.
type SchedulerOptions struct {
	Log           *slog.Logger   // nil discards
	MaxConcurrent int            // checks in flight at once, past their first 100 ms only when starved (see Scheduler); 0 means DefaultMaxConcurrent
	Rate          float64        // attempts started per second; 0 means DefaultRate, negative means no cap
	Burst         int            // attempts the rate cap lets through at once; 0 means Rate/100 (at least 1)
	StartDelay    time.Duration  // before a checker's first attempt, added to its random warmup; 0 means DefaultStartDelay, negative means none
	Checker       CheckerOptions // passed to every checker
	// FirstVerdict also delivers, once per real server, the health its
	// checks first agree on (every checker has run) when it equals the
	// initial state, so a consumer that assumed a health of its own (the
	// IPVS reconciler adopting the table it finds) learns the truth.
	FirstVerdict bool
	// StaticConcurrency keeps MaxConcurrent attempts in flight whenever
	// checks are due, without the adaptive limit (the behaviour before
	// it): every attempt in flight counts, however long it waits on the
	// network.
	StaticConcurrency bool
	// NewChecker builds a checker for one block; nil means [NewChecker].
	NewChecker func(*config.Checker, CheckerOptions) (Checker, error)
}

// ErrRunning is returned by [Scheduler.Run] when the scheduler already ran.
var ErrRunning = errors.New("scheduler already started")

// Scheduler runs the checks of a configuration with keepalived 2.2.7's
// timing and reports every change of a real server's health.
//
// All pending attempts sit in one heap ordered by due time, served by one
// dispatch loop; a goroutine exists only for an attempt in flight (at most
// MaxConcurrent), and attempts start no faster than Rate. TCP_CHECK's
// attempts started on time have no goroutine: the dispatch loop starts
// the connect and the connector's loop finishes it; a late one gets a
// goroutine like any other (scheduler_async.go). Checker blocks
// that do the same check with the same timing (the same real server under
// several virtual servers) run once and feed every real server using them.
//
// One difference in timing from keepalived: an attempt that started late
// makes its unit's next attempt due that much earlier than delay_loop (or
// delay_before_retry) after its end, by at most 20 ms and a tenth of the
// delay, so checks held up together do not stay together round after
// round (scheduler_catchup.go). With one P (GOMAXPROCS=1) the dispatch
// loop and the connector's loop share it in short turns (connect_async.go).
//
// Overload: a check's timeout covers the whole exchange, including the
// time its goroutine waits for a CPU, so a director whose CPU cannot keep
// up with every due check would see healthy real servers time out and
// flap if all of them ran at once. The number in flight is therefore
// limited adaptively (AIMD, see [Scheduler.ConcurrencyLimit]) between 32
// and MaxConcurrent, starting at 32: an attempt of a check that is up and
// takes half of its connect_timeout or more is read as starvation and
// cuts the limit to three quarters (once per generation of attempts: only
// one started after the last cut can cut again); attempts ending in under
// a quarter of their timeout while at least half the limit is in use grow
// it by one, slower ones by 1/limit. Checks that cannot start wait in the
// due queue and run late, as keepalived's do on a busy CPU, and the
// lateness histogram shows it. Slow attempts of checks already down never
// cut the limit (a dead real server is not overload), but a healthy real
// server that answers in more than half its timeout does; its checks then
// run late, never fail for it. StaticConcurrency turns the limit off.
// In the kernel lab (1 emulated vCPU, 1,000 HTTP_GET, delay_loop 1) this
// took failed attempts from 82–86 % to 2 of 9,170 (the killed victim).
//
// Attempts waiting on the network do not hold the limit: while the
// director is not starved (nine in ten attempts of healthy checks in the
// last second ended within 100 ms, and no attempt's goroutine waited 50 ms
// to run), an attempt still running 100 ms after it started stops
// counting against the limit and against MaxConcurrent, and slow attempts
// cut nothing. A SYN lost on the way (its retransmission a second later)
// or a black-holed real server then delays no other check, as in
// keepalived; at most one attempt per check is in flight. On a starved
// director every attempt counts, as above (limiter.go).
//
// Its methods are safe for concurrent use.
type Scheduler struct {
	log         *slog.Logger
	newChecker  func(*config.Checker, CheckerOptions) (Checker, error)
	ckOpts      CheckerOptions
	startDelay  time.Duration
	firstVerd   bool
	limiter     *rate.Limiter
	conc        *concurrencyLimit // adaptive limit on attempts in flight (limiter.go)
	wake        chan struct{}     // the head of the queue may have changed
	lateness    latenessHistogram
	transitions atomic.Uint64                   // transitions emitted
	beat        atomic.Int64                    // unix nanoseconds of the dispatch loop's last round; see Heartbeat
	metrics     *checkMetrics                   // per-attempt instruments, exported by SchedulerCollector
	onWeight    func(config.RealServerKey, int) // see OnWeight; guarded by mu
	fast        fastPath                        // the failure detector's hooks (scheduler_expedite.go)
	doneHead    atomic.Pointer[unit]            // finished attempts not yet recorded, newest first (scheduler_complete.go)
	combining   sync.Mutex                      // held by the goroutine recording them; guards the two slices below
	doneUnits   []*unit
	doneRecs    []doneRecord

	mu       sync.Mutex
	plan     *plan
	queue    dueQueue
	started  bool
	queuedAt time.Time // when the first attempts were queued (scheduler_start.go)
	early    []*unit   // expedited before Run: due at once, not shifted
	checks   uint64    // attempts completed
	fails    uint64    // attempts failed

	tmu   sync.Mutex
	tq    []Transition // delivered in order by the forwarder
	tWake chan struct{}
	out   chan Transition
}

// NewScheduler builds the checkers of cfg. It fails, naming every block,
// when a checker cannot be built (an unsupported type among them).
func NewScheduler(cfg *config.Config, opts SchedulerOptions) (*Scheduler, error) {
	s := &Scheduler{
		log:        opts.Log,
		newChecker: opts.NewChecker,
		ckOpts:     opts.Checker,
		startDelay: opts.StartDelay,
		firstVerd:  opts.FirstVerdict,
		wake:       make(chan struct{}, 1),
		tWake:      make(chan struct{}, 1),
		out:        make(chan Transition),
		metrics:    newCheckMetrics(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.newChecker == nil {
		s.newChecker = NewChecker
	}
	switch {
	case s.startDelay == 0:
		s.startDelay = DefaultStartDelay
	case s.startDelay < 0:
		s.startDelay = 0
	}
	n := opts.MaxConcurrent
	if n <= 0 {
		n = DefaultMaxConcurrent
	}
	if opts.StaticConcurrency {
		s.conc = newConcurrencyLimit(n, n, n)
		s.conc.noPark = true
	} else {
		s.conc = newConcurrencyLimit(limitFloor, n, limitInitial)
	}
	r := opts.Rate
	if r == 0 {
		r = DefaultRate
	}
	if r < 0 {
		s.limiter = rate.NewLimiter(rate.Inf, 1)
	} else {
		b := opts.Burst
		if b <= 0 {
			b = max(1, int(r/100))
		}
		s.limiter = rate.NewLimiter(rate.Limit(r), b)
	}
	entries, err := prepare(cfg, s.newChecker, s.ckOpts)
	if err != nil {
		return nil, fmt.Errorf("build checkers: %w", err)
	}
	p, fresh := assemble(entries, nil)
	s.plan = p
	now := time.Now()
	s.queueFresh(fresh, now)
	s.startQueue(now)
	return s, nil
}

// queueFresh schedules the first attempt of new units: the start delay
// plus a random part of their warmup, as keepalived's
// register_checkers_thread does. The caller holds s.mu.
func (s *Scheduler) queueFresh(fresh []*unit, now time.Time) {
	for _, u := range fresh {
		d := s.startDelay
		if u.pol.warmup > 0 {
			d += rand.N(u.pol.warmup)
		}
		s.queue.schedule(u, now.Add(d))
	}
}

// Transitions delivers every change of a real server's health, in the
// order they happened, while Run runs; it is closed when Run returns.
// Real servers start up, or down when one of their checkers has alpha
// (see [Scheduler.Health]); only changes from there are delivered.
func (s *Scheduler) Transitions() <-chan Transition { return s.out }

// Run runs the checks until ctx is done, then waits for the attempts in
// flight to end and closes Transitions. It returns nil on cancellation.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrRunning
	}
	s.anchorStart(time.Now()) // the first attempts count from now (scheduler_start.go)
	s.started = true
	s.mu.Unlock()

	var wg sync.WaitGroup
	fwdDone := make(chan struct{})
	go func() {
		defer close(fwdDone)
		s.forward(ctx)
	}()
	s.dispatch(ctx, &wg)
	wg.Wait()
	<-fwdDone
	close(s.out)
	return nil
}

// dispatch starts each unit when it is due, within the rate cap and the
// concurrency limit, until ctx is done.
func (s *Scheduler) dispatch(ctx context.Context, wg *sync.WaitGroup) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var async *asyncGroup       // made at the first asynchronous attempt (scheduler_async.go)
	var ready []unix.EpollEvent // scratch for taking the connector's ready events (connect_async.go)
	starts := 0
	oneP := runtime.GOMAXPROCS(0) == 1
	for {
		s.mu.Lock()
		now := time.Now()
		s.beat.Store(now.UnixNano())
		u := s.queue.popDue(now)
		wait := time.Duration(-1)
		var due time.Time
		if u != nil {
			due = s.queue.dueOf(u)
		} else if next := s.queue.next(); next != nil {
			wait = s.queue.dueOf(next).Sub(now)
		}
		s.mu.Unlock()

		if u != nil {
			if err := s.limiter.Wait(ctx); err != nil {
				return
			}
			slot, ok := s.acquire(ctx)
			if !ok {
				return
			}
			wg.Add(1)
			if starts++; async != nil && starts%pollEvery == 0 {
				tcpConnector.pollReady(ready) // finish ready connects between starts (connect_async.go)
			}
			launched := time.Now()
			if u.async && (oneP || launched.Sub(due) < asyncLateness) {
				if async == nil {
					async = s.asyncRun(ctx, wg)
					ready = make([]unix.EpollEvent, pollBatch)
				}
				s.attemptAsync(async, u, due, slot, launched)
				continue
			}
			go func() {
				defer wg.Done()
				s.attempt(ctx, u, due, slot, launched)
			}()
			continue
		}
		if wait < 0 || wait > heartbeatPeriod {
			wait = heartbeatPeriod // go round even when idle, so a live loop shows in Heartbeat
		}
		timer.Reset(wait)
		fire := timer.C
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-fire:
		}
		timer.Stop()
	}
}

// acquire waits for a slot under the adaptive limit; false when ctx is
// done first. Besides an attempt ending, a slot opens when an attempt in
// flight ages past parkAfter: it looks again every parkBucket.
func (s *Scheduler) acquire(ctx context.Context) (int64, bool) {
	t0 := time.Now()
	if slot, ok := s.conc.tryAcquire(t0); ok {
		return slot, true
	}
	tick := time.NewTicker(parkBucket)
	defer tick.Stop()
	for {
		select {
		case <-s.conc.freed:
		case <-tick.C:
		case <-ctx.Done():
			return 0, false
		}
		now := time.Now()
		if slot, ok := s.conc.tryAcquire(now); ok {
			s.conc.noteBlocked(now.Sub(t0))
			return slot, true
		}
	}
}

// ConcurrencyLimit returns how many check attempts may be in flight now:
// the adaptive limit, at most MaxConcurrent.
func (s *Scheduler) ConcurrencyLimit() int { return s.conc.current() }

// attempt runs one check of u, due at due, in the limit's slot, and
// records its result; its goroutine was started at launched.
func (s *Scheduler) attempt(ctx context.Context, u *unit, due time.Time, slot int64, launched time.Time) {
	start := time.Now()
	s.lateness.observe(start.Sub(due))
	res := u.checker.Check(ctx)
	end := time.Now()
	s.conc.release(slot, start.Sub(launched), end)
	if ctx.Err() != nil {
		return // cancelled: not a verdict on the real server
	}
	s.finish(u, res, start, end) // recorded in a batch, without a convoy on s.mu (scheduler_complete.go)
}

// complete applies one result to u and the real servers using it, and
// queues u's next attempt. The caller holds s.mu.
func (s *Scheduler) complete(u *unit, res Result, now time.Time) {
	if u.removed {
		return
	}
	s.checks++
	if !res.OK {
		s.fails++
	}
	wasUp := u.state.up
	s.fast.before(u, res, now)
	st := u.state.record(*u.pol, res.OK)
	u.last, u.lastAt, u.hasLast = res, s.queue.key(now), true
	s.applyWeight(u, res, st) // scheduler_weight.go
	s.logAttempt(u, res, wasUp, st)
	s.fast.checked(u, res, now)
	reason := "" // built only for a transition: most attempts change nothing
	for _, srv := range u.users {
		reported := false
		if st.changed {
			if u.state.up {
				srv.failing--
			} else {
				srv.failing++
			}
			if reason == "" {
				reason = attemptReason(u, res)
			}
			reported = s.settle(srv, reason, now)
		}
		if !srv.verdict && srv.allRun() {
			srv.verdict = true
			if s.firstVerd && !reported {
				if reason == "" {
					reason = attemptReason(u, res)
				}
				s.emit(Transition{Key: srv.key, Up: srv.up, Reason: "first verdict: " + reason, At: now,
					Detection: s.fast.detection(srv, now)})
			}
		}
	}
	delay := s.fast.after(u, res, st)
	s.queue.schedule(u, now.Add(delay-catchUp(u.fin.start.Sub(s.queue.dueOf(u)), delay)))
	if s.queue.next() == u {
		s.poke()
	}
}

// attemptReason is the reason a transition caused by res gives: the
// result's text, prefixed with the checker's name unless it has it.
func attemptReason(u *unit, res Result) string {
	reason := resultText(res)
	if name := u.checker.String(); !strings.HasPrefix(reason, name) {
		reason = name + ": " + reason
	}
	return reason
}

// settle reports srv's health if it changed, and whether it did. The
// caller holds s.mu.
func (s *Scheduler) settle(srv *realServer, reason string, at time.Time) bool {
	up := srv.failing == 0
	if up == srv.up {
		return false
	}
	srv.up = up
	s.emit(Transition{Key: srv.key, Up: up, Reason: reason, At: at, Detection: s.fast.detection(srv, at)})
	return true
}

// poke wakes the dispatch loop without blocking.
func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// resultText is a result's message, or its error when it has none.
func resultText(r Result) string {
	switch {
	case r.Message != "":
		return r.Message
	case r.Err != nil:
		return r.Err.Error()
	case r.OK:
		return "success"
	default:
		return "failure"
	}
}

// logAttempt logs what keepalived logs: a checker coming up or going down,
// and, with log_all_failures, every failed attempt while it is up.
func (s *Scheduler) logAttempt(u *unit, res Result, wasUp bool, st step) {
	switch {
	case st.changed && u.state.up:
		s.log.Info("check succeeded", "checker", u.checker.String(), "pos", u.block.Pos.String(),
			"users", len(u.users), "result", resultText(res))
	case st.changed:
		s.log.Info("check failed", "checker", u.checker.String(), "pos", u.block.Pos.String(),
			"users", len(u.users), "retries", u.pol.retry, "result", resultText(res))
	case !res.OK && wasUp && u.logAll:
		s.log.Info("check attempt failed", "checker", u.checker.String(), "pos", u.block.Pos.String(),
			"result", resultText(res))
	}
}
