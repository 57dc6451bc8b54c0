package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// TestRunListensLocallyByDefault runs `lvsprobe run` with the default
// --metrics-listen in this test's own network namespace, where nothing
// else listens, and reads every listening TCP socket there: the only
// one is /metrics on 127.0.0.1:9118, and status and reload are served
// on a unix socket of mode 0600, never on TCP.
func TestRunListensLocallyByDefault(t *testing.T) {
	if !strings.HasPrefix(defaultControlSocket, "/") {
		t.Fatalf("default control socket %q is not a unix socket path", defaultControlSocket)
	}
	before, err := testnet.TCPSockets()
	if err != nil {
		t.Fatal(err)
	}
	listening := func(ss []testnet.TCPSocket) []testnet.TCPSocket {
		var out []testnet.TCPSocket
		for _, s := range ss {
			if s.State == testnet.TCPListen {
				out = append(out, s)
			}
		}
		return out
	}
	if l := listening(before); len(l) != 0 {
		t.Fatalf("listeners before the start: %v", l)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(strings.NewReplacer("ADDR", "127.0.0.1", "PORT_A", "8080", "PORT_B", "8081").Replace(synConf)), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "lvsprobe.sock")
	lines := make(logLines, 4096)
	e := &env{stdout: io.Discard, stderr: t.Output(), log: slog.New(slog.NewTextHandler(lines, nil))}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, e, []string{"run", "-f", path, "--ipvs=dry-run", "--syn-probe=false", "--passive=off", "--control-socket=" + sock})
	}()
	ready := map[string]bool{}
	for len(ready) < 2 {
		select {
		case l := <-lines:
			for _, m := range []string{`msg="serving metrics"`, `msg="control socket ready"`} {
				if strings.Contains(l, m) {
					ready[m] = true
				}
			}
		case c := <-code:
			for len(lines) > 0 {
				t.Log(<-lines)
			}
			t.Fatalf("run exited %d", c)
		case <-ctx.Done():
			t.Fatalf("not ready: %v", ready)
		}
	}
	after, err := testnet.TCPSockets()
	if err != nil {
		t.Fatal(err)
	}
	got := listening(after)
	if len(got) != 1 || got[0].Local.String() != defaultMetricsListen {
		t.Errorf("listening TCP sockets %v, want only %s", got, defaultMetricsListen)
	}
	for _, s := range got {
		if !s.Local.Addr().IsLoopback() {
			t.Errorf("listens on %s: not loopback", s.Local)
		}
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket of mode 0600", fi.Mode())
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("run exited %d", c)
	}
}
