package prober

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// eventLog records a lab's events in the order they happen: the test's
// fault injection, the prober's misses (as the pump hands them over), the
// detector's suspicions (its log line) and the full checks' starts and
// ends. A nil *eventLog records nothing.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

// add appends one event.
func (l *eventLog) add(ev string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

// list returns the events so far.
func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// index returns the position of the first event from start on that has
// prefix, or -1.
func (l *eventLog) index(prefix string, start int) int {
	evs := l.list()
	for i := max(start, 0); i < len(evs); i++ {
		if strings.HasPrefix(evs[i], prefix) {
			return i
		}
	}
	return -1
}

// newChecker wraps build so that every check attempt records its start
// and its end.
func (l *eventLog) newChecker(build func(*config.Checker, CheckerOptions) (Checker, error)) func(*config.Checker, CheckerOptions) (Checker, error) {
	return func(c *config.Checker, opts CheckerOptions) (Checker, error) {
		ck, err := build(c, opts)
		if err != nil {
			return nil, err
		}
		return &eventChecker{Checker: ck, log: l}, nil
	}
}

type eventChecker struct {
	Checker
	log *eventLog
}

func (c *eventChecker) Check(ctx context.Context) Result {
	c.log.add("check start")
	r := c.Checker.Check(ctx)
	if r.OK {
		c.log.add("check end ok")
	} else {
		c.log.add("check end failed")
	}
	return r
}

// handler records the detector's suspicions (its "fast signal" log line)
// and passes every record on to next.
func (l *eventLog) handler(next slog.Handler) slog.Handler {
	return &eventHandler{Handler: next, log: l}
}

type eventHandler struct {
	slog.Handler
	log *eventLog
}

func (h *eventHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *eventHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "fast signal: running the full checks now" {
		ev := "suspect"
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "signal" {
				ev += ": " + a.Value.String()
			}
			return true
		})
		h.log.add(ev)
	}
	if h.Handler.Enabled(ctx, r.Level) {
		return h.Handler.Handle(ctx, r)
	}
	return nil
}

func (h *eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &eventHandler{Handler: h.Handler.WithAttrs(as), log: h.log}
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	return &eventHandler{Handler: h.Handler.WithGroup(name), log: h.log}
}

// TestDetectorBlackHoleOrder: a real server black-holed by nftables (every
// packet it receives dropped) at the default probe interval is suspected
// on its first unanswered probe, before a second one is declared; the
// confirming check starts at once (before the third miss), times out, is
// corroborated by the silence, and that one failure takes the real server
// out (retry 3 cut short). The order of the events is asserted, not their
// times.
func TestDetectorBlackHoleOrder(t *testing.T) {
	ev := &eventLog{}
	// delay_loop 60 s: the check that gave the first verdict just ended,
	// so no scheduled check falls inside the test; every check after the
	// black hole is one the detector asked for.
	lab := newDetLab(t, detLabOptions{connectTimeout: 3 * time.Second, delayLoop: time.Minute,
		delayBefore: 5 * time.Second, retry: 3, probeInterval: 100 * time.Millisecond, events: ev})
	if first := lab.next(); !first.Up {
		t.Fatalf("first verdict %+v, want up", first)
	}
	ev.add("blackhole")
	lab.rs.BlackHole(t)
	down := lab.next()
	evs := ev.list()
	t.Logf("events: %s", strings.Join(evs, ", "))
	t.Logf("down: %s %v", down.Reason, down.Detection.LogAttrs())

	bh := ev.index("blackhole", 0)
	miss1, miss2, miss3 := ev.index("miss 1", bh), ev.index("miss 2", bh), ev.index("miss 3", bh)
	sus := ev.index("suspect", bh)
	start := ev.index("check start", bh)
	end := ev.index("check end", bh)
	switch {
	case down.Up || down.Detection == nil:
		t.Fatalf("got %+v, want down with its detection", down)
	case miss1 < 0 || sus < 0 || start < 0 || end < 0:
		t.Fatalf("missing events after the black hole: miss 1 %d, suspicion %d, check start %d, end %d", miss1, sus, start, end)
	case !(miss1 < sus && (miss2 < 0 || sus < miss2)):
		t.Fatalf("suspicion at event %d, want after the first miss (%d) and before the second (%d)", sus, miss1, miss2)
	case !strings.Contains(evs[sus], "1 probes unanswered"):
		t.Fatalf("suspicion %q, want on one unanswered probe", evs[sus])
	case !(sus < start && (miss3 < 0 || start < miss3)):
		t.Fatalf("confirming check started at event %d, want after the suspicion (%d) and before the third miss (%d)", start, sus, miss3)
	case evs[end] != "check end failed":
		t.Fatalf("confirming check: %q, want failed", evs[end])
	case ev.index("check start", start+1) >= 0:
		t.Fatalf("a second check ran before the removal: want one failure, the ladder cut by the silence")
	case down.Detection.FirstSignal != "silence" || !strings.Contains(down.Detection.Cut, "probes unanswered"):
		t.Fatalf("detection %+v: want silence first and the unanswered probes as the cut", *down.Detection)
	}
	if n := testutil.ToFloat64(lab.det.m.suspicions.WithLabelValues("silence")); n != 1 {
		t.Fatalf("%v silence suspicions, want 1", n)
	}
}
