package selftest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// requireHost skips inside the guest (no nested lab) and where the lab
// cannot run; boots take seconds, so -short skips too.
func requireHost(t *testing.T) string {
	t.Helper()
	if os.Getenv("LVSPROBE_VMLAB") == "1" {
		t.Skip("boots a guest: runs on the host")
	}
	testenv.RequireLong(t)
	testenv.RequireRoot(t)
	testenv.RequireProgram(t, "qemu-system-x86_64")
	run, err := filepath.Abs("../run")
	if err != nil {
		t.Fatalf("path of run: %v", err)
	}
	return run
}

// runLab runs scripts/vmlab/run with extra environment and returns its
// stdout, stderr and exit status. The context only bounds a broken lab.
func runLab(t *testing.T, run string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, run, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// TestRunPassesStatus checks what run carries between host and guest:
// stdout and stderr apart, the exit status, the working directory and the
// LVSPROBE_ environment.
func TestRunPassesStatus(t *testing.T) {
	run := requireHost(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	stdout, stderr, code := runLab(t, run, []string{"LVSPROBE_SELFTEST_WORD=ahoy", "LVSPROBE_VMLAB_QUIET=1"},
		"sh", "-c", `echo "out $LVSPROBE_SELFTEST_WORD $(pwd) $(uname -r)"; echo "err $LVSPROBE_VMLAB" >&2; grep -c ip_vs /proc/modules >&2; exit 7`)
	if code != 7 {
		t.Fatalf("exit status %d, want 7; stderr:\n%s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "out ahoy "+wd+" ") {
		t.Errorf("stdout %q, want it to start with %q", stdout, "out ahoy "+wd+" ")
	}
	if !strings.HasPrefix(stderr, "err 1\n") || strings.HasPrefix(stderr, "err 1\n0\n") {
		t.Errorf("stderr %q, want \"err 1\" and ip_vs loaded", stderr)
	}
}

// TestRunFaults checks that a broken guest ends in a bounded time with
// status 125 and a reason, never a hang.
func TestRunFaults(t *testing.T) {
	run := requireHost(t)
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"boot timeout", []string{"LVSPROBE_VMLAB_BOOT_TIMEOUT=1"}, "did not come up within 1s"},
		{"run timeout", []string{"LVSPROBE_VMLAB_TIMEOUT=2"}, "did not finish within 2s"},
		{"init fails", []string{"LVSPROBE_VMLAB_MODULES=no_such_module"}, "without an exit status"},
		{"kernel panic", []string{"LVSPROBE_VMLAB_APPEND=rdinit=/nonexistent"}, "Kernel panic"},
		{"bad setting", []string{"LVSPROBE_VMLAB_MEM=lots"}, "must be a positive integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runLab(t, run, tc.env, "sleep", "3600")
			if code != 125 {
				t.Fatalf("exit status %d, want 125; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Fatalf("stderr lacks %q:\n%s", tc.want, stderr)
			}
		})
	}
}
