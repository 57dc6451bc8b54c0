package prober

import (
	"fmt"
	"strings"
	"time"
)

// report builds a [Result] step by step, seesaw style: each step appends
// to the message ("connect 198.18.1.2:80; GET /; status 200").
type report struct {
	start time.Time
	msg   strings.Builder
}

// newReport starts a report headed by what is checked.
func newReport(head string) *report {
	r := &report{start: time.Now()}
	r.msg.WriteString(head)
	r.msg.WriteString(": ")
	return r
}

// step records one step.
func (r *report) step(format string, args ...any) {
	if b := r.msg.String(); !strings.HasSuffix(b, ": ") {
		r.msg.WriteString("; ")
	}
	fmt.Fprintf(&r.msg, format, args...)
}

// fail completes a failed check: err becomes the last step and the cause.
func (r *report) fail(err error) Result {
	r.step("%v", err)
	return Result{Message: r.msg.String(), Duration: time.Since(r.start), Err: err}
}

// ok completes a passed check.
func (r *report) ok() Result {
	r.step("ok")
	return Result{OK: true, Message: r.msg.String(), Duration: time.Since(r.start)}
}
