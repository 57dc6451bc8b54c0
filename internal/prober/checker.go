package prober

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Result is the outcome of one check attempt.
type Result struct {
	OK       bool          // the check passed
	Message  string        // what happened, built up step by step ("connect 198.18.1.2:80; status 500")
	Duration time.Duration // how long the attempt took
	Err      error         // the cause of a failure, nil when OK
}

// Checker runs one full check against one endpoint. Check honours ctx
// cancellation and its own connect_timeout, whichever comes first, and
// never blocks past them. Implementations are safe for concurrent use.
type Checker interface {
	Check(ctx context.Context) Result
	// Key identifies what the check does (type, endpoint and options):
	// two checkers with the same Key are interchangeable and run once.
	Key() string
	String() string
}

// Transition is a change of a real server's health, delivered only when
// the health changes.
type Transition struct {
	Key    config.RealServerKey // which real server
	Up     bool                 // its new health
	Reason string               // the failing or passing check, for logs
	At     time.Time            // when the deciding check completed
	// Detection is the evidence behind the change, set by a [Detector]
	// (nil from the scheduler itself).
	Detection *Detection
}

// CheckerOptions are the settings a checker takes from outside its block.
type CheckerOptions struct {
	BodyCap int64          // largest HTTP body read before the check fails; 0 means config.DefaultBodyCap
	SSL     config.SSLDefs // global_defs SSL { } (client certificate, CA) for SSL_GET
}

// ErrUnsupported is returned by NewChecker for checker types lvsprobe does
// not run yet.
var ErrUnsupported = errors.New("checker type not supported yet")

// NewChecker builds the checker for one checker block.
func NewChecker(c *config.Checker, opts CheckerOptions) (Checker, error) {
	switch c.Type {
	case config.TCPCheck:
		return newTCPChecker(c, opts)
	case config.HTTPGet, config.SSLGet:
		return newHTTPChecker(c, opts)
	default:
		return nil, fmt.Errorf("%s %s: %w", c.Pos, c.Type, ErrUnsupported)
	}
}
