package prober

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Asynchronous TCP_CHECK attempts: no goroutine per attempt.
//
// The scheduler's dispatcher starts the connect itself (checkAsync) and
// leaves it with the connector; the connector's loop finishes it when the
// socket's epoll event arrives (connected, refused, failed), and fails it
// at its connect_timeout from a min-heap of deadlines the connector owns:
// the loop's read deadline on the epoll descriptor (one runtime timer,
// moved only when an earlier deadline arrives or it fires) is the heap's
// earliest deadline. Ending a group's context (the scheduler's Run)
// finishes every attempt of the group still pending at once. Each
// outcome, with the socket already reset and pooled, goes to the group's
// sink, from whichever goroutine saw it: the dispatcher (a connect that
// completed or failed at once), the loop (an event or a deadline), or the
// context's AfterFunc (cancellation).
//
// Whoever removes an attempt from the connector's waiting set (under
// c.mu) owns its outcome, so each attempt reaches the sink exactly once.

// asyncGroup is the set of asynchronous attempts of one owner (one run of
// a scheduler), with where their outcomes go.
type asyncGroup struct {
	ctx       context.Context
	sink      func(a attemptRef, res Result, end time.Time) // called once per attempt
	cancelled bool                                          // ctx ended: no attempt may start; guarded by tcpConnector.mu
}

// newAsyncGroup returns a group whose pending attempts end (with ctx's
// error) as soon as ctx does.
func newAsyncGroup(ctx context.Context, sink func(attemptRef, Result, time.Time)) *asyncGroup {
	g := &asyncGroup{ctx: ctx, sink: sink}
	context.AfterFunc(ctx, func() { tcpConnector.cancelGroup(g) })
	return g
}

// asyncChecker is a checker whose attempt can run without a goroutine of
// its own. The scheduler detects it once, when it builds the unit.
type asyncChecker interface {
	Checker
	// checkAsync starts an attempt whose result reaches g's sink exactly
	// once, from this call or later from another goroutine. It never
	// blocks.
	checkAsync(g *asyncGroup, ref attemptRef)
}

// checkAsync is Check without waiting: the connect is started here and
// finished by the connector (connect_async.go).
func (t *tcpChecker) checkAsync(g *asyncGroup, ref attemptRef) {
	c := &tcpConnector
	if err := c.start(); err != nil {
		g.sink(ref, t.failed(ref.start, err), time.Now())
		return
	}
	if t.zoneBad {
		zone, err := zoneIndex(t.ep.addr.Addr())
		if err != nil {
			g.sink(ref, t.failed(ref.start, err), time.Now())
			return
		}
		t.zone, t.zoneBad = zone, false
	}
	sa := rawSockaddrOf(t.ep.addr, t.zone)
	pool := t.ep.poolKey()
	fd, inSet := c.get(pool)
	if fd < 0 {
		var err error
		if fd, err = t.ep.socket(); err != nil {
			g.sink(ref, t.failed(ref.start, err), time.Now())
			return
		}
	}
	err := rawConnect(fd, &sa)
	if err == unix.EINPROGRESS || err == unix.EINTR {
		if err = c.arm(g, ref, t, pool, fd, inSet); err == nil {
			return // the connector has it
		}
	}
	c.put(pool, fd, inSet)
	g.sink(ref, t.connectResult(err, ref.start), time.Now())
}

// connectResult is the result of an attempt started at start whose
// connect ended with err (nil: connected), as Check makes it.
func (t *tcpChecker) connectResult(err error, start time.Time) Result {
	if err == nil {
		return Result{OK: true, Message: t.okMsg, Duration: time.Since(start)}
	}
	return t.failed(start, fmt.Errorf("connect %v: %w", t.ep.addr, err))
}

// failed is the result of an attempt started at start that failed with err.
func (t *tcpChecker) failed(start time.Time, err error) Result {
	r := newReport(t.String())
	r.start = start
	return r.fail(fmt.Errorf("connect: %w", err))
}

// arm registers the connecting socket fd of t's attempt ref and arms it
// in the epoll set (adding it unless inSet), with its connect_timeout in
// the deadline heap. On an error nothing is registered and the caller
// still owns the socket.
func (c *connector) arm(g *asyncGroup, ref attemptRef, t *tcpChecker, pool poolKey, fd int, inSet bool) error {
	w := connectWaits.Get().(*connectWait)
	w.fd, w.group, w.ref, w.chk, w.pool = fd, g, ref, t, pool
	op := unix.EPOLL_CTL_ADD
	if inSet {
		op = unix.EPOLL_CTL_MOD
	}
	// The lock is held over epoll_ctl: once armed, the loop may see the
	// event at once, and an attempt must never be both in the waiting set
	// and unarmed where a canceller or the deadline could take it.
	c.mu.Lock()
	if g.cancelled || c.stopped != nil {
		err := c.stopped
		if g.cancelled {
			err = g.ctx.Err()
		}
		c.mu.Unlock()
		w.clearAsync()
		connectWaits.Put(w)
		return err
	}
	c.next++
	w.token = c.next
	c.waiting[w.token] = w
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: int32(uint32(w.token)), Pad: int32(uint32(w.token >> 32))}
	if _, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(c.epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0); errno != 0 {
		delete(c.waiting, w.token)
		c.mu.Unlock()
		w.clearAsync()
		connectWaits.Put(w)
		return fmt.Errorf("epoll_ctl: %w", errno)
	}
	w.deadline = time.Now().Add(t.ep.timeout)
	c.timers.push(w)
	if c.armed.IsZero() || w.deadline.Before(c.armed) {
		c.armed = w.deadline
		_ = c.file.SetReadDeadline(w.deadline)
	}
	c.mu.Unlock()
	return nil
}

// completeAsync resets and pools the socket of the asynchronous attempt
// w, whose connect ended with err, and hands its result to the group. The
// caller has removed w from the waiting set (and the heap).
func (c *connector) completeAsync(w *connectWait, err error) {
	g, ref, t := w.group, w.ref, w.chk
	c.put(w.pool, w.fd, true)
	w.clearAsync()
	connectWaits.Put(w)
	res := t.connectResult(err, ref.start)
	g.sink(ref, res, time.Now())
}

// expire fails the attempts whose connect_timeout has passed and moves
// the loop's read deadline to the next one. Only the loop calls it.
func (c *connector) expire() {
	now := time.Now()
	c.mu.Lock()
	due := c.expired[:0]
	for len(c.timers) > 0 && !c.timers[0].deadline.After(now) {
		w := c.timers.pop()
		delete(c.waiting, w.token)
		due = append(due, w)
	}
	c.armed = time.Time{}
	if len(c.timers) > 0 {
		c.armed = c.timers[0].deadline
	}
	_ = c.file.SetReadDeadline(c.armed)
	c.mu.Unlock()
	for _, w := range due {
		c.completeAsync(w, os.ErrDeadlineExceeded)
	}
	clear(due)
	c.expired = due[:0]
}

// cancelGroup ends every pending attempt of g (its context is done) and
// lets none start.
func (c *connector) cancelGroup(g *asyncGroup) {
	c.failPending(func() { g.cancelled = true }, func(w *connectWait) bool { return w.group == g }, g.ctx.Err())
}

// failPending runs mark and takes the attempts match selects out of the
// waiting set and the heap, both under c.mu, then fails them with err.
func (c *connector) failPending(mark func(), match func(*connectWait) bool, err error) {
	c.mu.Lock()
	mark()
	var list []*connectWait
	for tok, w := range c.waiting {
		if match(w) {
			delete(c.waiting, tok)
			c.timers.remove(w)
			list = append(list, w)
		}
	}
	c.mu.Unlock()
	for _, w := range list {
		c.completeAsync(w, err)
	}
}

// errConnectorStopped fails the asynchronous attempts once the
// connector's loop has ended.
var errConnectorStopped = errors.New("TCP_CHECK connector stopped: its epoll loop failed")

// stopAsync fails every pending asynchronous attempt with err and makes
// every later one fail at once: the loop that would finish them is gone.
func (c *connector) stopAsync(err error) {
	c.failPending(func() { c.stopped = err }, func(w *connectWait) bool { return w.group != nil }, err)
}

// pendingAsync counts g's attempts the connector holds.
func (c *connector) pendingAsync(g *asyncGroup) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, w := range c.waiting {
		if w.group == g {
			n++
		}
	}
	return n
}

// clearAsync forgets an asynchronous attempt's references before w goes
// back to the pool.
func (w *connectWait) clearAsync() {
	w.group, w.chk, w.ref, w.pool, w.deadline, w.token = nil, nil, attemptRef{}, poolKey{}, time.Time{}, 0
}

// deadlineHeap is a min-heap of asynchronous attempts by deadline; each
// knows its place (hidx) so a completed one leaves it in O(log n).
type deadlineHeap []*connectWait

func (h *deadlineHeap) push(w *connectWait) {
	w.hidx = len(*h)
	*h = append(*h, w)
	h.up(w.hidx)
}

func (h *deadlineHeap) pop() *connectWait {
	w := (*h)[0]
	h.remove(w)
	return w
}

// remove takes w out of the heap, if it is there.
func (h *deadlineHeap) remove(w *connectWait) {
	i := w.hidx
	s := *h
	if i < 0 || i >= len(s) || s[i] != w {
		return
	}
	last := len(s) - 1
	if i != last {
		s[i] = s[last]
		s[i].hidx = i
	}
	s[last] = nil
	*h = s[:last]
	w.hidx = -1
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h deadlineHeap) less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }

func (h deadlineHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}

func (h deadlineHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts i down; false when it did not move.
func (h deadlineHeap) down(i int) bool {
	i0 := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > i0
}

// Sharing one CPU between the dispatch loop and the connector's loop.
//
// With GOMAXPROCS=1 (lvsprobe given one CPU) the two loops take turns on
// the one P, and the Go scheduler switches between them only when one
// blocks, or when sysmon preempts it after 10 ms. At 10,000 TCP_CHECKs a
// second a runtime trace showed each running in bursts of 5–14 ms: the
// dispatcher starting a crowd of due checks while their completions
// waited (the connector's goroutine is woken through the netpoller, which
// a busy P does not poll), then the connector's loop resetting and
// recording a thousand completions while checks falling due waited for
// the dispatcher; checks started that late took the goroutine path, which
// costs more, and lateness fed itself (docs/benchmarks.md §17.1). So the
// dispatch loop takes the ready completions itself every pollEvery starts
// (pollReady), and the connector's loop lets other goroutines (a
// dispatcher whose timer fired) run every loopYield completions.

// Interleaving of the two loops.
const (
	pollEvery = 16 // checks the dispatch loop starts between two looks at the connector's ready events
	pollBatch = 64 // ready events it takes at one look
	loopYield = 32 // completions the connector's loop finishes between two yields
)

// deliver finishes the connects of the ready events, yielding the P
// every yield events (0: never).
func (c *connector) deliver(events []unix.EpollEvent, yield int) {
	for i := range events {
		c.finish(uint64(uint32(events[i].Fd))|uint64(uint32(events[i].Pad))<<32, events[i].Events)
		if yield > 0 && i%yield == yield-1 && i < len(events)-1 {
			runtime.Gosched()
		}
	}
}

// pollReady finishes, without blocking, the connects already ready, at
// most len(buf) of them (buf is the caller's scratch); it returns how
// many. It is safe to call while the connector's loop runs: each event is
// taken by one epoll_wait, and finish takes each attempt from the waiting
// set under c.mu. It does nothing before the connector has started.
func (c *connector) pollReady(buf []unix.EpollEvent) int {
	if len(buf) == 0 || !c.live.Load() {
		return 0
	}
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(c.epfd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	if errno != 0 {
		return 0
	}
	n := int(r)
	c.deliver(buf[:n], 0)
	return n
}
