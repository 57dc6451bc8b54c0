package ipvs

import (
	"context"
	"strconv"
	"time"
)

// Timeouts are the kernel's IPVS connection timeouts (ipvsadm --set),
// from global_defs lvs_timeouts; a zero field leaves that timeout as it is.
type Timeouts struct {
	TCP    time.Duration
	TCPFin time.Duration
	UDP    time.Duration
}

// IsZero reports whether t changes nothing.
func (t Timeouts) IsZero() bool { return t == Timeouts{} }

// TimeoutSetter is implemented by backends that can set the connection
// timeouts (both of ours). The timeouts belong to the whole network
// namespace, not to a service: the reconciler sets them only when the
// configuration names them, as keepalived does at start and on reload.
type TimeoutSetter interface {
	SetTimeouts(ctx context.Context, t Timeouts) error
}

// ipvsadmTimeouts returns the ipvsadm command that sets t.
func ipvsadmTimeouts(t Timeouts) string {
	sec := func(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
	return "ipvsadm --set " + sec(t.TCP) + " " + sec(t.TCPFin) + " " + sec(t.UDP)
}
