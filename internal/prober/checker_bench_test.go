package prober

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
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
// nginx in a real-server namespace under testnet.Main (so that the process
// CPU measured is the checker's alone), a Go server on loopback otherwise.
// With useTLS the server speaks HTTPS (a fresh self-signed certificate).
func benchTarget(b *testing.B, useTLS bool) netip.AddrPort {
	b.Helper()
	if testnet.Inside() {
		rs := testnet.New(b, testnet.Options{}).RealServers[0]
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

// checkerCPUTime returns the user and system CPU time the process has used.
func checkerCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCheck runs ck b.N times and reports the process CPU per check.
func benchCheck(b *testing.B, ck Checker) {
	b.Helper()
	ctx := context.Background()
	if res := ck.Check(ctx); !res.OK {
		b.Fatal(res.Message)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := checkerCPUTime(b)
	for b.Loop() {
		if res := ck.Check(ctx); !res.OK {
			b.Fatal(res.Message)
		}
	}
	b.ReportMetric(float64(checkerCPUTime(b)-start)/float64(b.N), "cpu-ns/op")
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
