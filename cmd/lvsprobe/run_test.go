package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/prober"
)

const runConf = `virtual_server 198.18.250.1 80 {
    delay_loop 0.1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 PORT {
        weight 1
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 0.05
            warmup 0
        }
    }
}
`

// acceptAndReset serves l until it is closed.
func acceptAndReset(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.Close()
	}
}

// TestRunDryRun runs `lvsprobe run --ipvs=dry-run` against a real
// listener on loopback and follows the ipvsadm commands it prints as the
// listener dies and comes back.
func TestRunDryRun(t *testing.T) {
	if _, err := prober.NewChecker(&config.Checker{Type: config.TCPCheck, ConnectIP: netip.MustParseAddr("127.0.0.1"), ConnectPort: 1,
		ConnectTimeout: time.Second}, prober.CheckerOptions{}); errors.Is(err, prober.ErrUnsupported) {
		t.Skip("TCP_CHECK is not implemented yet")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go acceptAndReset(l)
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(strings.Replace(runConf, "PORT", port, 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	e := &env{stdout: pw, stderr: io.Discard, log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, e, []string{"run", "-f", path, "--ipvs=dry-run"})
		_ = pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	// expect reads printed commands until one contains every part.
	expect := func(parts ...string) {
		t.Helper()
		for lines.Scan() {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(lines.Text(), p)
			}
			if ok {
				return
			}
		}
		t.Fatalf("output ended (%v) before a line with %q", ctx.Err(), parts)
	}

	expect("ipvsadm -A -t 198.18.250.1:80")
	expect("ipvsadm -a -t 198.18.250.1:80", "-r "+addr)
	_ = l.Close()
	expect("ipvsadm -d -t 198.18.250.1:80", "-r "+addr)
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	go acceptAndReset(l2)
	expect("ipvsadm -a -t 198.18.250.1:80", "-r "+addr)

	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if c := <-code; c != 0 {
		t.Fatalf("run exited %d after cancellation, want 0", c)
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"run", "--ipvs=bogus"}, 2},
		{[]string{"run", "--max-concurrent=0"}, 2},
		{[]string{"run", "--static-concurrency=maybe"}, 2},
		{[]string{"run", "--rate=0"}, 2},
		{[]string{"run", "extra"}, 2},
		{[]string{"run", "-f", "/nonexistent/keepalived.conf", "--ipvs=dry-run"}, 1},
		{[]string{"run", "--syn-probe-ports=62000-61000"}, 2},
		{[]string{"run", "--syn-probe-ports=0-10"}, 2},
		{[]string{"run", "--syn-probe-ports=x"}, 2},
		{[]string{"run", "--syn-probe-interval=0s"}, 2},
		{[]string{"run", "--syn-probe-pps=0"}, 2},
		{[]string{"run", "--syn-probe=maybe"}, 2},
		{[]string{"run", "--syn-probe-frames=maybe"}, 2},
		{[]string{"run", "--syn-probe-rst=maybe"}, 2},
		{[]string{"run", "--syn-probe-ports=61000-61000", "-f", "/nonexistent/keepalived.conf"}, 1},
		{[]string{"run", "--detector=bogus"}, 2},
		{[]string{"run", "--detector=compatible", "-f", "/nonexistent/keepalived.conf"}, 1},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
			if c := run(t.Context(), e, tt.args); c != tt.code {
				t.Fatalf("exit %d, want %d", c, tt.code)
			}
		})
	}
}
