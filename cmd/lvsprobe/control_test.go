package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/prober"
)

// startControl serves a control socket for a real scheduler and a
// dry-run reconciler over conf, with a real listener on loopback as the
// real server.
func startControl(t *testing.T) (*controlServer, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go acceptAndReset(l)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	writeFile(t, conf, strings.Replace(runConf, "PORT", port, 1))
	f := runFlags{file: conf}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	cfg, err := loadRunConfig(log, f)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := prober.NewScheduler(cfg, prober.SchedulerOptions{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rec := ipvs.NewReconciler(ipvs.NewDryRun(log, io.Discard), cfg, ipvs.ReconcilerOptions{Log: log})
	rl := newReloader(log, f, cfg, sched, rec, nil, nil)
	ctl := &controlServer{log: log, file: conf, rl: rl}
	ctx, cancel := context.WithCancel(t.Context())
	sock := filepath.Join(t.TempDir(), "c.sock")
	done := make(chan struct{})
	go func() { ctl.serve(ctx, sock); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 10*time.Second, "the control socket", func() (bool, string) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	return ctl, sock
}

// runCtl runs an lvsprobe command in-process and returns its exit code
// and output.
func runCtl(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, log: slog.New(slog.DiscardHandler)}
	code := run(ctx, e, args)
	return code, out.String(), errb.String()
}

// TestStatusDuringReload checks the answers while a reload runs: status
// shows the running configuration and says a reload is in progress; a
// second reload is refused with a clear message.
func TestStatusDuringReload(t *testing.T) {
	ctl, sock := startControl(t)
	ctl.rl.mu.Lock() // a reload in progress
	ctl.rl.busy.Store(true)
	code, out, errs := runCtl(t.Context(), "status", "--socket", sock)
	if code != 0 || !strings.Contains(out, "RELOAD IN PROGRESS") || !strings.Contains(out, "TCP 198.18.250.1:80") {
		t.Errorf("status during a reload: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCtl(t.Context(), "status", "--socket", sock, "--json")
	if d, err := decodeStatus(strings.NewReader(out)); code != 0 || err != nil || !d.Reloading {
		t.Errorf("status --json during a reload: exit %d, %v\n%s%s", code, err, out, errs)
	}
	code, _, errs = runCtl(t.Context(), "reload", "--socket", sock)
	if code != 1 || !strings.Contains(errs, "a reload is already in progress") {
		t.Errorf("reload during a reload: exit %d, stderr %q", code, errs)
	}
	ctl.rl.busy.Store(false)
	ctl.rl.mu.Unlock()
	code, out, errs = runCtl(t.Context(), "reload", "--socket", sock)
	if code != 0 || !strings.Contains(out, "reloaded: 1 checks") {
		t.Errorf("reload after it: exit %d\n%s%s", code, out, errs)
	}
}

// TestControlSocketTakeover checks what the daemon does with the file at
// its socket path: a stale socket is replaced; a live one (another
// daemon) and a non-socket are left alone with an error naming the path.
func TestControlSocketTakeover(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody answers
	live := filepath.Join(dir, "live.sock")
	ll, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	plain := filepath.Join(dir, "plain")
	writeFile(t, plain, "x")
	tests := []struct {
		name, path, wantErr string
	}{
		{"stale socket", stale, ""},
		{"fresh path in a new directory", filepath.Join(dir, "sub", "c.sock"), ""},
		{"live socket", live, "another lvsprobe answers on it"},
		{"regular file", plain, "not a socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := listenControl(t.Context(), tt.path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				fi, err := os.Stat(tt.path)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("socket mode %v, %v; want 0600", fi.Mode(), err)
				}
				return
			}
			if err == nil {
				l.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("error %q, want one with %q and the path", err, tt.wantErr)
			}
		})
	}
}

// TestControlCommandsBadInput checks the exit codes of status and reload
// on bad flags and on a socket nobody serves, and of run on a malformed
// --metrics-listen.
func TestControlCommandsBadInput(t *testing.T) {
	nobody := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		args    []string
		code    int
		wantErr string
	}{
		{[]string{"status", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"status", "extra"}, 2, "usage"},
		{[]string{"reload", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"reload", "extra"}, 2, "usage"},
		{[]string{"status", "--socket", nobody}, 1, "no lvsprobe answers on " + nobody},
		{[]string{"reload", "--socket", nobody}, 1, "no lvsprobe answers on " + nobody},
		{[]string{"run", "--metrics-listen=9118"}, 2, "want HOST:PORT"},
		{[]string{"run", "--metrics-listen=127.0.0.1:99999"}, 2, "want HOST:PORT"},
		{[]string{"run", "--metrics-listen=127.0.0.1:http"}, 2, "want HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errs := runCtl(t.Context(), tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, tt.code, tt.wantErr)
			}
		})
	}
}
