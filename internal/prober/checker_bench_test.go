package prober

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// benchBody is the page the benchmarks fetch: 4 KiB, a typical health page
// or small image.
var benchBody = strings.Repeat("lvsprobe benchmark body ", 4096/24+1)[:4096]

// benchTarget returns the address of a server holding /bench.html: a real
// nginx in a real-server namespace under testnet.Main, a Go server on
// loopback otherwise. With useTLS the server speaks HTTPS (a fresh
// self-signed certificate).
//
// In the namespace the veth runs threaded NAPI (testnet ThreadedNAPI) so
// that the real server's kernel work is not charged to this process, and
// the director end's NAPI thread (the kernel receiving the director's
// packets) is reported beside it as napi-cpu-ns/op; LVSPROBE_BENCH_NAPI=off
// keeps the plain veth, where both run inside this process's system calls.
func benchTarget(b *testing.B, useTLS bool) netip.AddrPort {
	b.Helper()
	if testnet.Inside() {
		rs := testnet.New(b, testnet.Options{}).RealServers[0]
		if os.Getenv("LVSPROBE_BENCH_NAPI") != "off" {
			rs.ThreadedNAPI(b)
			benchRS = rs
		}
		opts := testnet.NginxOptions{Files: map[string][]byte{"/bench.html": []byte(benchBody)}}
		if useTLS {
			opts.TLSPort, opts.ServerNames = 443, []string{"bench.example.test"}
		}
		ng := rs.StartNginx(b, opts)
		if useTLS {
			return netip.AddrPortFrom(rs.Addr, ng.TLSPort())
		}
		return netip.AddrPortFrom(rs.Addr, ng.Port())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var cfg *tls.Config
	if useTLS {
		cfg = &tls.Config{Certificates: []tls.Certificate{testnet.NewCA(b).Issue(b, "bench.example.test").TLS(b)}}
	}
	return serveRaw(b, l, cfg, reply(ok200(benchBody))).addr
}

// benchRS is the real server of the running benchmark when its veth runs
// threaded NAPI (benchCheck reports its director-side thread), or nil.
var benchRS *testnet.RealServer

// checkerCPUTime returns the user and system CPU time the process has used.
func checkerCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCheck runs ck b.N times and reports the process CPU per check
// (benchCPU).
func benchCheck(b *testing.B, ck Checker) {
	b.Helper()
	ctx := context.Background()
	if res := ck.Check(ctx); !res.OK {
		b.Fatal(res.Message)
	}
	benchCPU(b, func() {
		if res := ck.Check(ctx); !res.OK {
			b.Fatal(res.Message)
		}
	})
	benchRS = nil
}

// dialerChecker is TCP_CHECK as it was before the epoll connector: Go's
// net.Dialer, SO_LINGER 0, close. Kept for the comparison only.
type dialerChecker struct{ ep endpoint }

func (d dialerChecker) Check(ctx context.Context) Result {
	ctx, cancel := d.ep.withTimeout(ctx)
	defer cancel()
	c, err := d.ep.dial(ctx)
	if err != nil {
		return Result{Err: err, Message: err.Error()}
	}
	_ = c.Close()
	return Result{OK: true}
}
func (d dialerChecker) Key() string    { return "dialer " + d.ep.key() }
func (d dialerChecker) String() string { return "dialer " + d.ep.String() }

// BenchmarkTCPCheckDialer is BenchmarkTCPCheck through net.Dialer (the
// previous TCP_CHECK), for comparison in the same run.
func BenchmarkTCPCheckDialer(b *testing.B) {
	addr := benchTarget(b, false)
	ep, err := newEndpoint(checkerFor(config.TCPCheck, addr, time.Second))
	if err != nil {
		b.Fatal(err)
	}
	benchCheck(b, dialerChecker{ep: ep})
}

func BenchmarkTCPCheck(b *testing.B) {
	addr := benchTarget(b, false)
	benchCheck(b, mustChecker(b, checkerFor(config.TCPCheck, addr, time.Second), CheckerOptions{}))
}

func BenchmarkHTTPGetDigest(b *testing.B) {
	addr := benchTarget(b, false)
	c := checkerFor(config.HTTPGet, addr, time.Second, &config.URL{Path: "/bench.html", Digest: md5hex(benchBody)})
	benchCheck(b, mustChecker(b, c, CheckerOptions{}))
}

func BenchmarkSSLGetDigest(b *testing.B) {
	addr := benchTarget(b, true)
	c := checkerFor(config.SSLGet, addr, time.Second, &config.URL{Path: "/bench.html", Digest: md5hex(benchBody)})
	benchCheck(b, mustChecker(b, c, CheckerOptions{}))
}

// dial connects within ctx through net.Dialer, as every TCP check did
// before the epoll connector and dialRaw; kept for the comparison only.
// The connection comes back with SO_LINGER 0 set, so that closing it
// sends a RST.
func (e endpoint) dial(ctx context.Context) (*net.TCPConn, error) {
	d := net.Dialer{
		KeepAlive: -1,
		Control:   e.control,
	}
	if e.bind.IsValid() || e.port != 0 {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(e.bind, e.port))
	}
	c, err := d.DialContext(ctx, "tcp", e.addr.String())
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	if err := tc.SetLinger(0); err != nil {
		_ = tc.Close()
		return nil, fmt.Errorf("set SO_LINGER: %w", err)
	}
	return tc, nil
}
