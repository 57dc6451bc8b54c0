// Package testenv lets tests that need root, a program, BPF or the kernel
// lab skip with a reason where those are absent, and fail instead when the
// environment variable LVSPROBE_STRICT=1 is set (as .ci/run sets it), so
// that a skip in CI can never hide a failure.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether skips must be failures (LVSPROBE_STRICT=1).
func Strict() bool { return os.Getenv("LVSPROBE_STRICT") == "1" }

// SkipOrFail skips the test with reason, or fails it under Strict.
func SkipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if Strict() {
		tb.Fatalf("required by LVSPROBE_STRICT=1 but unavailable: %s", reason)
	}
	tb.Skip(reason)
}

// RequireRoot skips (or fails under Strict) unless running as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(tb, "needs root")
	}
}

// RequireProgram returns the path of name, or skips (fails under Strict)
// when it is not installed.
func RequireProgram(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// Debian puts daemons in /usr/sbin, which a plain user's PATH lacks.
		for _, dir := range []string{"/usr/sbin/", "/sbin/"} {
			if _, serr := os.Stat(dir + name); serr == nil {
				return dir + name
			}
		}
		SkipOrFail(tb, name+" is not installed")
	}
	return p
}

// RequireLong skips a long test under -short (never a failure: -short is
// a choice, not a missing environment).
func RequireLong(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("long test; skipped with -short")
	}
}

// SkipForKernelLab handles a test that needs the kernel's IPVS where the
// kernel has none (the host: err says why). `make vmtest` runs such tests
// in the kernel lab with LVSPROBE_REQUIRE_IPVS=1, where a missing IPVS is
// a failure; everywhere else the test skips, even under LVSPROBE_STRICT,
// because the host's missing IPVS is by design, not a missing environment.
func SkipForKernelLab(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("LVSPROBE_REQUIRE_IPVS") == "1" {
		tb.Fatalf("LVSPROBE_REQUIRE_IPVS=1 but the kernel has no IPVS: %v", err)
	}
	tb.Skipf("kernel has no IPVS; runs in the kernel lab (make vmtest): %v", err)
}
