package loader

import (
	"time"

	"golang.org/x/sys/unix"
)

// The kernel stamps answers with bpf_ktime_get_ns (CLOCK_MONOTONIC). Go's
// monotonic clock is the same clock, so one CLOCK_MONOTONIC reading taken
// next to a time.Now() at start-up turns any later time.Now() into ktime
// without a system call.
var clockBase, clockBaseK = func() (time.Time, int64) {
	var ts unix.Timespec
	now := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return now, ts.Nano()
}()

// Ktime returns the current CLOCK_MONOTONIC time in ns, the clock of the
// kernel's timestamps on answers.
func Ktime() uint64 { return ktimeAt(time.Now()) }

// ktimeAt converts a time.Time read from this process's clock to ktime.
func ktimeAt(t time.Time) uint64 { return uint64(clockBaseK + int64(t.Sub(clockBase))) }
