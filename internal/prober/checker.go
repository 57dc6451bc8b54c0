package prober

import (
	"context"
	"errors"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Result is the outcome of one check attempt.
type Result struct {
	OK       bool          // the check passed
	Message  string        // what happened, built up step by step ("connect 198.18.1.2:80; status 500")
	Duration time.Duration // how long the attempt took
	Err      error         // the cause of a failure, nil when OK
	Weight   WeightChange  // a weight the check asks for (MISC_CHECK misc_dynamic, FILE_CHECK); zero for the others
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
	// Detection is the evidence behind the change, taken when the change
	// happened; nil when the scheduler has no [Detector].
	Detection *Detection
}

// CheckerOptions are the settings a checker takes from outside its block.
type CheckerOptions struct {
	BodyCap int64          // largest HTTP body read before the check fails; 0 means config.DefaultBodyCap
	SSL     config.SSLDefs // global_defs SSL { } (client certificate, CA) for SSL_GET
	// ScriptUser and ScriptGroup are global_defs script_user: who runs a
	// MISC_CHECK script without a user line. Empty means keepalived's
	// default: keepalived_script if that user exists, else root.
	ScriptUser  string
	ScriptGroup string
	// ScriptSecurity is global_defs enable_script_security: a MISC_CHECK
	// script in a path others may change is refused.
	ScriptSecurity bool
}

// ErrUnsupported is returned by NewChecker for checker types lvsprobe does
// not run (BFD_CHECK).
var ErrUnsupported = errors.New("checker type not supported")

// NewChecker builds the checker for one checker block.
func NewChecker(c *config.Checker, opts CheckerOptions) (Checker, error) {
	switch c.Type {
	case config.TCPCheck:
		return newTCPChecker(c, opts)
	case config.HTTPGet, config.SSLGet:
		return newHTTPChecker(c, opts)
	case config.MiscCheck:
		return newMiscChecker(c, opts)
	case config.DNSCheck:
		return newDNSChecker(c, opts)
	case config.UDPCheck:
		return newUDPChecker(c, opts)
	case config.PingCheck:
		return newPingChecker(c, opts)
	case config.SMTPCheck:
		return newSMTPChecker(c, opts)
	case config.FileCheck:
		return newFileChecker(c, opts)
	default: // BFD_CHECK (see internal/config/DISAGREEMENTS.md)
		return nil, unsupportedError(c)
	}
}
