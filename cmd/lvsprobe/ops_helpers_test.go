package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// envAsMain makes the test binary run as lvsprobe itself, so the tests
// below start the daemon and its clients as real processes.
const envAsMain = "LVSPROBE_TEST_AS_MAIN"

func init() {
	if os.Getenv(envAsMain) == "1" {
		main()
	}
}

// lvsprobeCmd returns a command running lvsprobe with args: the binary
// named by LVSPROBE_BIN, or this test binary acting as lvsprobe.
func lvsprobeCmd(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	bin := os.Getenv("LVSPROBE_BIN")
	env := os.Environ()
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		bin = exe
		env = append(env, envAsMain+"=1")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// lockedBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon is a running `lvsprobe run`.
type daemon struct {
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	socket  string
	metrics string // host:port of /metrics, "" when off
	done    chan error
}

// newDaemon returns a daemon with its own control socket and the given
// metrics address, not started yet.
func newDaemon(t *testing.T, metrics string) *daemon {
	return &daemon{stderr: &lockedBuffer{}, socket: filepath.Join(t.TempDir(), "lvsprobe.sock"), metrics: metrics, done: make(chan error, 1)}
}

// start starts cmd as d's process, its stderr kept, and stops it on
// cleanup: with SIGTERM (then SIGKILL after 10 s) when gentle, with
// SIGKILL otherwise. A failed test logs the process's stderr.
func (d *daemon) start(t *testing.T, cmd *exec.Cmd, gentle bool) {
	t.Helper()
	d.cmd = cmd
	d.cmd.Stdout = io.Discard
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if gentle {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
				_ = d.cmd.Process.Kill()
				<-d.done
			}
		} else {
			_ = d.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("lvsprobe stderr:\n%s", d.stderr.String())
		}
	})
}

// startDaemon starts `lvsprobe run --ipvs=dry-run -f conf` with its own
// control socket and metrics address (plus extra flags); it is stopped
// with SIGTERM on cleanup.
func startDaemon(t *testing.T, conf, metrics string, extra ...string) *daemon {
	t.Helper()
	d := newDaemon(t, metrics)
	args := append([]string{"run", "-f", conf, "--ipvs=dry-run", "--syn-probe=false",
		"--metrics-listen=" + metrics, "--control-socket=" + d.socket}, extra...)
	d.start(t, lvsprobeCmd(t, context.Background(), args...), true)
	return d
}

// alive fails the test when the daemon has exited.
func (d *daemon) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-d.done:
		d.done <- err
		t.Fatalf("lvsprobe exited: %v\n%s", err, d.stderr.String())
	default:
	}
}

// waitFor polls cond every 50 ms until it holds or timeout passes; what
// describes the last state seen for the failure message.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(50 * time.Millisecond) // polling interval of a bounded wait, not synchronisation
	}
}

// status fetches the daemon's status document, or returns an error.
func (d *daemon) status(ctx context.Context) (*statusDoc, error) {
	resp, err := controlRequest(ctx, d.socket, http.MethodGet, "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status: %s", resp.Status)
	}
	return decodeStatus(resp.Body)
}

// scrape fetches the daemon's /metrics exposition.
func (d *daemon) scrape(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.metrics+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape: %s", resp.Status)
	}
	return string(b), err
}

// sample returns the value of the first exposition line that starts with
// prefix (a metric name with its labels as rendered), and whether there
// is one.
func sample(expo, prefix string) (float64, bool) {
	for _, l := range strings.Split(expo, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok && strings.HasPrefix(rest, " ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// freePort returns a loopback TCP address nobody listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// opsConf renders a configuration with one HTTP_GET-checked real server
// per nginx; path is the URL checked on real server i (by index).
func opsConf(rss []*testnet.RealServer, path func(i int) string) string {
	var b strings.Builder
	b.WriteString("virtual_server 198.18.250.1 80 {\n    delay_loop 0.2\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n")
	for i, rs := range rss {
		fmt.Fprintf(&b, `    real_server %s 80 {
        weight %d
        HTTP_GET {
            url {
                path %s
                status_code 200
            }
            connect_timeout 2
            retry 1
            delay_before_retry 0.1
        }
    }
`, rs.Addr, i+1, path(i))
	}
	b.WriteString("}\n")
	return b.String()
}

// opsLab starts n real servers running nginx with /health.txt and
// /other.txt, and writes a configuration checking /health.txt on each.
func opsLab(t *testing.T, n int) (rss []*testnet.RealServer, conf string) {
	t.Helper()
	nw := testnet.New(t, testnet.Options{RealServers: n})
	for _, rs := range nw.RealServers {
		rs.StartNginx(t, testnet.NginxOptions{Files: map[string][]byte{"health.txt": []byte("ok\n"), "other.txt": []byte("ok\n")}})
	}
	conf = filepath.Join(t.TempDir(), "keepalived.conf")
	writeFile(t, conf, opsConf(nw.RealServers, func(int) string { return "/health.txt" }))
	return nw.RealServers, conf
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// allUp reports whether every real server of every service is up in d.
func allUp(d *statusDoc, want int) (bool, string) {
	n := 0
	var states []string
	for _, s := range d.Services {
		for _, rs := range s.RealServers {
			states = append(states, rs.Address+"="+rs.State)
			if rs.State == "up" {
				n++
			}
		}
	}
	return n == want, strings.Join(states, " ")
}

// mustJSON renders v for failure messages.
func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
