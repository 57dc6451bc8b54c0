package prober

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// The scale benchmarks of issue 3 ("Must reach"): a real nginx (Debian's)
// in its own process listens on many loopback ports of the test's network
// namespace (testnet.Main puts the test binary in a fresh one when root),
// the configuration is real keepalived.conf text loaded by config.Load,
// and the checks are the package's real checkers. Each run warms up for
// 3 s and then measures for LVSPROBE_BENCH_SECONDS (default 20 s):
//
//	lateness-p50/p99/p999-ms  start of an attempt minus its due time
//	cpu-cores                 this process's user+system CPU / wall time
//	rss-peak-MiB              this process's VmHWM (the whole test binary)
//	timewait-max              TIME_WAIT sockets in the namespace (sockstat), sampled
//	checks/s, failed          attempts completed, and those that failed
//
// Run: go test ./internal/prober -run '^$' -bench Scale -benchtime 1x

const benchBasePort = 20000 // targets listen on 127.0.0.1:20000…, below the ephemeral range

func BenchmarkScale10kTCPCheck(b *testing.B) {
	benchScale(b, 10000, func(port int, _ string) string {
		return "        TCP_CHECK {\n            connect_timeout 3\n        }\n"
	})
}

func BenchmarkScale1kHTTPGetDigest(b *testing.B) {
	benchScale(b, 1000, func(port int, digest string) string {
		return "        HTTP_GET {\n            url {\n                path /payload.bin\n                digest " + digest +
			"\n            }\n            connect_timeout 3\n        }\n"
	})
}

// benchScale runs n real servers on 127.0.0.1:benchBasePort+i, each with
// the checker block check(port, digest), delay_loop 1, under virtual
// servers of 1,000 real servers each.
func benchScale(b *testing.B, n int, check func(port int, digest string) string) {
	testenv.RequireLong(b)
	payload := make([]byte, 16<<10)
	_, _ = rand.Read(payload)
	sum := md5.Sum(payload)
	digest := hex.EncodeToString(sum[:])
	startBenchNginx(b, n, payload)

	var conf strings.Builder
	for i := range n {
		if i%1000 == 0 {
			if i > 0 {
				conf.WriteString("}\n")
			}
			fmt.Fprintf(&conf, "virtual_server 198.18.250.%d 80 {\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n", i/1000+1)
		}
		port := benchBasePort + i
		fmt.Fprintf(&conf, "    real_server 127.0.0.1 %d {\n        weight 1\n%s    }\n", port, check(port, digest))
	}
	conf.WriteString("}\n")
	path := filepath.Join(b.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	window := 20 * time.Second
	if v, err := strconv.Atoi(os.Getenv("LVSPROBE_BENCH_SECONDS")); err == nil && v > 0 {
		window = time.Duration(v) * time.Second
	}

	for range b.N {
		s, err := NewScheduler(cfg, SchedulerOptions{Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		runDone := make(chan error, 1)
		go func() { runDone <- s.Run(ctx) }()
		transitions := make(chan int, 1)
		go func() {
			c := 0
			for range s.Transitions() {
				c++
			}
			transitions <- c
		}()

		time.Sleep(3 * time.Second) // start delay (1 s) and warmup (delay_loop) spread the first round
		l0, st0, cpu0, t0 := s.Lateness(), s.Stats(), cpuTime(b), time.Now()
		tw := 0
		tick := time.NewTicker(2 * time.Second)
		for end := time.After(window); ; {
			select {
			case <-tick.C:
				tw = max(tw, timeWait(b))
				continue
			case <-end:
			}
			break
		}
		tick.Stop()
		l1, st1, cpu1, dt := s.Lateness(), s.Stats(), cpuTime(b), time.Since(t0)
		cancel()
		if err := <-runDone; err != nil {
			b.Fatal(err)
		}
		nTrans := <-transitions

		l := l1.Sub(l0)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(l.Quantile(0.5)), "lateness-p50-ms")
		b.ReportMetric(ms(l.Quantile(0.99)), "lateness-p99-ms")
		b.ReportMetric(ms(l.Quantile(0.999)), "lateness-p999-ms")
		b.ReportMetric(float64(cpu1-cpu0)/float64(dt), "cpu-cores")
		b.ReportMetric(float64(vmHWM(b))/(1<<20), "rss-peak-MiB")
		b.ReportMetric(float64(tw), "timewait-max")
		b.ReportMetric(float64(st1.Attempts-st0.Attempts)/dt.Seconds(), "checks/s")
		b.ReportMetric(float64(st1.Failures-st0.Failures), "failed")
		b.Logf("%d real servers: %d attempts in %v, lateness p50 %v p99 %v p99.9 %v max %v, %d transitions",
			n, st1.Attempts-st0.Attempts, dt.Round(time.Millisecond), l.Quantile(0.5), l.Quantile(0.99), l.Quantile(0.999), l1.Max, nTrans)
		if st1.Failures != 0 || nTrans != 0 {
			b.Errorf("%d failed attempts and %d transitions against healthy real servers", st1.Failures, nTrans)
		}
	}
	b.StopTimer()
}

// startBenchNginx runs one nginx process listening on n loopback ports,
// serving payload at /payload.bin, until the benchmark ends.
func startBenchNginx(b *testing.B, n int, payload []byte) {
	b.Helper()
	bin := testenv.RequireProgram(b, "nginx")
	dir := b.TempDir()
	for _, d := range []string{"html", "logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "html", "payload.bin"), payload, 0o644); err != nil {
		b.Fatal(err)
	}
	var c strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&c, format+"\n", args...) }
	p("daemon off;")
	p("master_process off;")
	p("worker_processes 1;")
	p("worker_rlimit_nofile %d;", 2*n+4096)
	p("pid %s;", filepath.Join(dir, "nginx.pid"))
	p("error_log %s crit;", filepath.Join(dir, "logs", "error.log"))
	p("events { worker_connections %d; multi_accept on; }", n+4096)
	p("http {")
	p("  access_log off;")
	p("  default_type application/octet-stream;")
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		p("  %s_temp_path %s;", t, filepath.Join(dir, "tmp", t))
	}
	p("  server {")
	for i := range n {
		p("    listen 127.0.0.1:%d;", benchBasePort+i)
	}
	p("    root %s;", filepath.Join(dir, "html"))
	p("  }")
	p("}")
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(c.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "logs", "error.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatalf("start nginx: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	// nginx binds every port before it accepts on any: the last port
	// accepting means all do. A refused connect returns at once.
	last := "127.0.0.1:" + strconv.Itoa(benchBasePort+n-1)
	deadline := time.Now().Add(30 * time.Second)
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		conn, err := net.DialTimeout("tcp", last, time.Second)
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case err := <-done:
			b.Fatalf("nginx exited: %v\n%s", err, out.String())
		case <-time.After(backoff):
		}
		if time.Now().After(deadline) {
			b.Fatalf("nginx not accepting on %s: %v\n%s", last, err, out.String())
		}
	}
}

// timeWait returns the TIME_WAIT sockets of this network namespace, from
// /proc/net/sockstat (constant cost, unlike walking /proc/net/tcp).
func timeWait(b *testing.B) int {
	data, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "TCP: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			if f[i] == "tw" {
				n, err := strconv.Atoi(f[i+1])
				if err != nil {
					b.Fatal(err)
				}
				return n
			}
		}
	}
	b.Fatal("no TCP tw count in /proc/net/sockstat")
	return 0
}

// cpuTime returns the user+system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM returns this process's peak resident set size in bytes.
func vmHWM(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
