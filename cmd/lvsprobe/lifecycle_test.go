package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

const lifecycleConf = `global_defs {
    enable_script_security
    script_user root
    lvs_flush_on_stop VS
}
virtual_server 198.18.251.1 80 {
    omega
    delay_loop 0.1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    quorum_up "SCRIPT quorum up"
    quorum_down "SCRIPT quorum down"
    real_server 127.0.0.1 PORT {
        weight 1
        notify_up "SCRIPT 'rs up'"
        notify_down "SCRIPT 'rs down'"
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 0.05
            warmup 0
        }
    }
}
`

// TestLifecycle runs `lvsprobe run --ipvs=dry-run` under a stand-in for
// systemd (a real unixgram NOTIFY_SOCKET, WATCHDOG_USEC) against a real
// listener, and follows what a service manager and the configuration's
// scripts see: READY after the first pass, watchdog pings, quorum_up at
// start, notify_down and quorum_down when the real server dies, the way
// back, RELOADING/READY around a reload, STOPPING at the end and, with
// omega and lvs_flush_on_stop, notify_down and quorum_down as it stops.
func TestLifecycle(t *testing.T) {
	testenv.RequireRoot(t) // scripts run as script_user root
	dir := t.TempDir()
	fifo := filepath.Join(dir, "events")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ff, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	events := bufio.NewReader(ff)
	script := filepath.Join(dir, "event")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$*\" >"+fifo+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// event reads as many script events as wanted, in any order: a real
	// server's and its virtual server's scripts run side by side, as in
	// keepalived.
	event := func(want ...string) {
		t.Helper()
		var got []string
		for range want {
			if err := ff.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
				t.Fatal(err)
			}
			line, err := events.ReadString('\n')
			if err != nil {
				t.Fatalf("no script ran (want %q, got %q): %v", want, got, err)
			}
			got = append(got, strings.TrimSuffix(line, "\n"))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("script events %q, want %q", got, want)
		}
	}

	sock := filepath.Join(dir, "notify")
	sd, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	pings := 0
	// notice returns the next non-watchdog datagram's first line, and the
	// whole datagram.
	notice := func() (string, []string) {
		t.Helper()
		buf := make([]byte, 4096)
		for {
			if err := sd.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
				t.Fatal(err)
			}
			n, err := sd.Read(buf)
			if err != nil {
				t.Fatalf("no sd_notify message: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(string(buf[:n])), "\n")
			if lines[0] == "WATCHDOG=1" {
				pings++
				continue
			}
			return lines[0], lines
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go acceptAndReset(l)
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "keepalived.conf")
	src := strings.NewReplacer("PORT", port, "SCRIPT", script).Replace(lifecycleConf)
	if err := os.WriteFile(conf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctl := filepath.Join(dir, "ctl.sock")

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, e, []string{"run", "-f", conf, "--ipvs=dry-run", "--syn-probe=false", "--metrics-listen=", "--control-socket=" + ctl})
	}()

	if first, all := notice(); first != "READY=1" || len(all) < 2 || !strings.HasPrefix(all[1], "STATUS=1 virtual servers") {
		t.Fatalf("first notice %q, want READY=1 with a status", all)
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		t.Error("NOTIFY_SOCKET left in the environment scripts inherit")
	}
	event("quorum up") // keepalived: "Starting with quorum up"
	_ = l.Close()
	event("rs down", "quorum down")
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	go acceptAndReset(l2)
	event("rs up", "quorum up")

	rc := make(chan int, 1)
	go func() {
		rc <- run(ctx, &env{stdout: io.Discard, stderr: io.Discard, log: e.log}, []string{"reload", "--socket", ctl})
	}()
	if first, all := notice(); first != "RELOADING=1" || len(all) != 2 || !strings.HasPrefix(all[1], "MONOTONIC_USEC=") {
		t.Fatalf("reload began with %q", all)
	}
	if first, _ := notice(); first != "READY=1" {
		t.Fatalf("reload ended with %q, want READY=1", first)
	}
	if c := <-rc; c != 0 {
		t.Fatalf("lvsprobe reload exited %d", c)
	}
	if pings == 0 {
		// The run took well over one 100 ms ping period by now.
		t.Error("no watchdog ping")
	}
	cancel()
	if first, _ := notice(); first != "STOPPING=1" {
		t.Fatalf("at stop: %q, want STOPPING=1", first)
	}
	event("rs down", "quorum down") // omega, with lvs_flush_on_stop: keepalived's shutdown notifies
	if c := <-code; c != 0 {
		t.Fatalf("run exited %d", c)
	}
}
