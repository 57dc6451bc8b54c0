package prober

import (
	"context"
	"sync"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// attemptLog wraps checkers to record every attempt's result, and signals
// each one, so tests wait for attempts instead of sleeping.
type attemptLog struct {
	mu    sync.Mutex
	items []attemptRecord
	tick  chan struct{}
	build func(*config.Checker, CheckerOptions) (Checker, error)
}

type attemptRecord struct {
	at time.Time // completion
	ok bool
}

func newAttemptLog(build func(*config.Checker, CheckerOptions) (Checker, error)) *attemptLog {
	return &attemptLog{tick: make(chan struct{}, 1), build: build}
}

func (l *attemptLog) newChecker(c *config.Checker, opts CheckerOptions) (Checker, error) {
	ck, err := l.build(c, opts)
	if err != nil {
		return nil, err
	}
	return &loggedChecker{Checker: ck, log: l}, nil
}

func (l *attemptLog) records() []attemptRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]attemptRecord(nil), l.items...)
}

type loggedChecker struct {
	Checker
	log *attemptLog
}

func (c *loggedChecker) Check(ctx context.Context) Result {
	r := c.Checker.Check(ctx)
	c.log.mu.Lock()
	c.log.items = append(c.log.items, attemptRecord{at: time.Now(), ok: r.OK})
	c.log.mu.Unlock()
	select {
	case c.log.tick <- struct{}{}:
	default:
	}
	return r
}
