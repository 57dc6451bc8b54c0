package synprobe

import (
	"net/netip"
	"time"
)

// Kind is what a [Signal] reports.
type Kind int

// Kinds of signal.
const (
	SynAck Kind = iota + 1 // the target answered a probe with a SYN-ACK: something listens
	Reset                  // the target answered with a RST: nothing listens
	Miss                   // no valid answer by the probe's deadline: the next probe's departure, or an interval after it left if earlier
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case SynAck:
		return "synack"
	case Reset:
		return "rst"
	case Miss:
		return "miss"
	}
	return "unknown"
}

// Signal is one observation about one target, for the failure detector.
type Signal struct {
	Target            netip.AddrPort // the probed address and port
	Kind              Kind           // what happened
	RTT               time.Duration  // answer time - send time (0 for Miss)
	ConsecutiveMisses int            // misses in a row, including this one (0 after an answer)
	// Stamp is when it happened, in ns of CLOCK_MONOTONIC (loader.Ktime's
	// clock): an answer's arrival at the receiver's hook, a miss's
	// deadline (its successor's departure or, if earlier, its own
	// departure plus its target's interval). 0: unknown.
	Stamp uint64
}

// TargetState is the current view of one target.
type TargetState struct {
	Target            netip.AddrPort // the probed address and port
	ConsecutiveMisses int            // probes in a row with no valid answer
	LastRTT           time.Duration  // RTT of the newest valid answer, 0 if none yet
	SynAckSeen        bool           // the newest valid answer was a SYN-ACK
	RSTSeen           bool           // the newest valid answer was a RST
	Sent              uint64         // probes sent
	Answered          uint64         // probes validly answered
}
