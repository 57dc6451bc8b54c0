package sdnotify

import (
	"strconv"
	"testing"
)

// FuzzWatchdogFrom: any WATCHDOG_USEC / WATCHDOG_PID pair gives either no
// watchdog or a positive interval, exactly what the number says, and only
// for this process.
func FuzzWatchdogFrom(f *testing.F) {
	f.Add("30000000", "")
	f.Add("30000000", "42")
	f.Add("0", "42")
	f.Add("-1", "")
	f.Add("99999999999999999999", "")
	f.Add("1e6", "42")
	f.Fuzz(func(t *testing.T, usec, pid string) {
		d, ok := watchdogFrom(usec, pid, 42)
		if !ok {
			if d != 0 {
				t.Fatalf("no watchdog but interval %v", d)
			}
			return
		}
		if d <= 0 {
			t.Fatalf("watchdog with interval %v", d)
		}
		if pid != "" && pid != "42" {
			if p, err := strconv.Atoi(pid); err != nil || p != 42 {
				t.Fatalf("watchdog for pid %q", pid)
			}
		}
		u, err := strconv.ParseInt(usec, 10, 64)
		if err != nil || d.Microseconds() != u {
			t.Fatalf("interval %v from %q", d, usec)
		}
	})
}
