package ipvs

import (
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Retry timing after a failed write, when ReconcilerOptions leave it out.
const (
	DefaultRetryBase = 250 * time.Millisecond
	DefaultRetryMax  = 30 * time.Second
)

// opTarget is what a write acts on: a service, or a destination in one.
// Backoff is kept per target, whatever the kind of write.
type opTarget struct {
	svc    config.ServiceKey // a serviceID
	dest   destKey
	isDest bool
}

// backoff remembers failing targets and when each may be tried again:
// base, 2×base, 4×base … up to max.
type backoff struct {
	base, max time.Duration
	failing   map[opTarget]failure
}

type failure struct {
	tries int
	next  time.Time
}

func newBackoff(base, maxDelay time.Duration) *backoff {
	return &backoff{base: base, max: maxDelay, failing: make(map[opTarget]failure)}
}

// ready reports whether t may be tried at now.
func (b *backoff) ready(t opTarget, now time.Time) bool {
	f, ok := b.failing[t]
	return !ok || !now.Before(f.next)
}

// fail records a failure of t at now and returns the delay before the
// next try.
func (b *backoff) fail(t opTarget, now time.Time) time.Duration {
	f := b.failing[t]
	d := b.base << min(f.tries, 30)
	if d <= 0 || d > b.max {
		d = b.max
	}
	f.tries++
	f.next = now.Add(d)
	b.failing[t] = f
	return d
}

// succeed forgets t.
func (b *backoff) succeed(t opTarget) { delete(b.failing, t) }

// earliest returns the earliest time a failing target may be retried,
// or the zero time when nothing is failing.
func (b *backoff) earliest() time.Time {
	var e time.Time
	for _, f := range b.failing {
		if e.IsZero() || f.next.Before(e) {
			e = f.next
		}
	}
	return e
}
