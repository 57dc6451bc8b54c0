package prober

import (
	"strconv"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// WeightKind says how a [WeightChange] applies to a real server's weight.
type WeightKind uint8

// Kinds of weight change.
const (
	// WeightNone: the check says nothing about the weight.
	WeightNone WeightKind = iota
	// WeightAbsolute: the real server's weight becomes Value (MISC_CHECK
	// with misc_dynamic: the script's exit status minus 2, 0..253).
	WeightAbsolute
	// WeightOffset: Value is added to the configured weight (FILE_CHECK:
	// the number in the file times the weight, negated with reverse).
	WeightOffset
)

// WeightChange is what a check says about the weight of the real servers
// using it, as keepalived 2.2.7 computes it (checker_t's cur_weight).
//
// The scheduler sums them per real server and reports the result through
// [Scheduler.OnWeight]; `lvsprobe run` hands it to the IPVS reconciler.
type WeightChange struct {
	Kind  WeightKind
	Value int
}

// String returns "", "=N" or "+N"/"-N".
func (w WeightChange) String() string {
	switch w.Kind {
	case WeightAbsolute:
		return "=" + strconv.Itoa(w.Value)
	case WeightOffset:
		if w.Value >= 0 {
			return "+" + strconv.Itoa(w.Value)
		}
		return strconv.Itoa(w.Value)
	}
	return ""
}

// FileCheckInterval is how often a FILE_CHECK reads its file. keepalived
// watches it with inotify; lvsprobe reads it on this cadence (a read of a
// small file, shared by every real server tracking it).
const FileCheckInterval = 1 * time.Second

// checkerPolicy applies the timing rules of the checkers that do not use
// tcp_epilog's ladder unchanged:
//   - MISC_CHECK, DNS_CHECK, UDP_CHECK, PING_CHECK climb the retry ladder
//     only while up (misc_check_child_thread, dns_final, udp_epilog,
//     icmp_epilog): while down a failure waits a delay_loop;
//   - FILE_CHECK has no timers in keepalived (its file is watched): it is
//     read every FileCheckInterval, without retries, and never starts in
//     alpha (add_rs_to_track_files clears alpha: the file is known at once).
func checkerPolicy(c *config.Checker, p *policy) {
	switch c.Type {
	case config.MiscCheck, config.DNSCheck, config.UDPCheck, config.PingCheck:
		p.ladderOnlyUp = true
	case config.FileCheck:
		*p = policy{delayLoop: FileCheckInterval, delayBeforeRetry: FileCheckInterval}
	}
}
