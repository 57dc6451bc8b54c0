package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// inProcess is `lvsprobe run` running inside the test's process, its log
// records delivered one per line.
type inProcess struct {
	t      *testing.T
	lines  logLines
	code   chan int
	cancel context.CancelFunc
}

// runInProcess starts `lvsprobe run ARGS...` logging text at level, for
// limit at most.
func runInProcess(t *testing.T, level slog.Level, limit time.Duration, args ...string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	t.Cleanup(cancel)
	p := &inProcess{t: t, lines: make(logLines, 4096), code: make(chan int, 1), cancel: cancel}
	e := &env{stdout: io.Discard, stderr: t.Output(),
		log: slog.New(slog.NewTextHandler(p.lines, &slog.HandlerOptions{Level: level}))}
	go func() { p.code <- run(ctx, e, append([]string{"run"}, args...)) }()
	return p
}

// line waits up to limit for a log line holding every part, and reports
// false when none came. The test fails if the run exits first.
func (p *inProcess) line(limit time.Duration, parts ...string) (string, bool) {
	p.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case l := <-p.lines:
			ok := true
			for _, part := range parts {
				ok = ok && strings.Contains(l, part)
			}
			if ok {
				return l, true
			}
		case <-timer.C:
			return "", false
		case c := <-p.code:
			p.t.Fatalf("run exited %d while waiting for %q", c, parts)
		}
	}
}

// must is line with a 20 s limit that fails the test when no line comes.
func (p *inProcess) must(parts ...string) string {
	p.t.Helper()
	l, ok := p.line(20*time.Second, parts...)
	if !ok {
		p.t.Fatalf("no log line with %q", parts)
	}
	return l
}

// stop cancels the run and fails the test unless it exits 0.
func (p *inProcess) stop() {
	p.t.Helper()
	p.cancel()
	if c := <-p.code; c != 0 {
		p.t.Fatalf("run exited %d", c)
	}
}
