package prober

import (
	"net/netip"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// benchRealServer returns a real-server namespace (under testnet.Main)
// for the benchmarks of the UDP and ICMP checkers.
func benchRealServer(b *testing.B) *testnet.RealServer {
	b.Helper()
	if !testnet.Inside() {
		testenv.SkipOrFail(b, "needs the test topology (testnet.Main)")
	}
	return testnet.New(b, testnet.Options{}).RealServers[0]
}

// BenchmarkDNSCheck: one DNS_CHECK against Debian's dnsmasq in a namespace.
func BenchmarkDNSCheck(b *testing.B) {
	rs := benchRealServer(b)
	startDnsmasq(b, rs)
	ck := mustChecker(b, dnsBlock(netip.AddrPortFrom(rs.Addr, 53), time.Second, "A", "ok.example.test"), CheckerOptions{})
	eventually(b, ck, true, 50, 100*time.Millisecond)
	benchCheck(b, ck)
}

// BenchmarkUDPCheck: one UDP_CHECK with require_reply against a Go echo
// server in a namespace.
func BenchmarkUDPCheck(b *testing.B) {
	rs := benchRealServer(b)
	startUDPEcho(b, rs, 5300)
	ck := mustChecker(b, udpBlock(netip.AddrPortFrom(rs.Addr, 5300), time.Second,
		config.UDPOptions{Payload: []byte("ping"), RequireReply: true}), CheckerOptions{})
	eventually(b, ck, true, 50, 100*time.Millisecond)
	benchCheck(b, ck)
}

// BenchmarkPingCheck: one PING_CHECK (ping socket) to a namespace.
func BenchmarkPingCheck(b *testing.B) {
	rs := benchRealServer(b)
	setPingGroupRange(b, "0 2147483647")
	ck := mustChecker(b, pingBlock(rs.Addr, time.Second), CheckerOptions{})
	eventually(b, ck, true, 50, 100*time.Millisecond)
	benchCheck(b, ck)
}

// BenchmarkMiscCheck: one MISC_CHECK running /bin/true (a fork and exec
// per check, as keepalived pays too).
func BenchmarkMiscCheck(b *testing.B) {
	ck := mustChecker(b, miscBlock(5*time.Second, false, testenv.RequireProgram(b, "true")), CheckerOptions{})
	benchCheck(b, ck)
}

// BenchmarkFileCheck: one FILE_CHECK read.
func BenchmarkFileCheck(b *testing.B) {
	ck := mustChecker(b, &config.Checker{Type: config.FileCheck,
		File: &config.FileOptions{TrackFile: "x", Path: "/proc/sys/vm/overcommit_ratio", Weight: 1}}, CheckerOptions{})
	benchCheck(b, ck)
}
