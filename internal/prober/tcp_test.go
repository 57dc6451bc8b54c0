package prober

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// acceptor accepts connections on l and reports each one's remote address.
func acceptor(t *testing.T, l net.Listener) <-chan netip.AddrPort {
	t.Helper()
	peers := make(chan netip.AddrPort, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case peers <- netip.MustParseAddrPort(c.RemoteAddr().String()):
			default:
			}
			_ = c.Close()
		}
	}()
	return peers
}

func TestTCPCheck(t *testing.T) {
	l := listenLoopback(t)
	peers := acceptor(t, l)
	addr := netip.MustParseAddrPort(l.Addr().String())
	closed := listenLoopback(t)
	closedAddr := netip.MustParseAddrPort(closed.Addr().String())
	closed.Close()

	ck := mustChecker(t, checkerFor(config.TCPCheck, addr, time.Second), CheckerOptions{})
	if res := ck.Check(context.Background()); !res.OK || res.Message != "TCP_CHECK "+addr.String()+": connected; ok" {
		t.Fatalf("got OK=%v %q", res.OK, res.Message)
	}
	<-peers
	res := mustChecker(t, checkerFor(config.TCPCheck, closedAddr, time.Second), CheckerOptions{}).Check(context.Background())
	if res.OK || !errors.Is(res.Err, syscall.ECONNREFUSED) || !strings.Contains(res.Message, "connect: ") {
		t.Fatalf("closed port: OK=%v %q (%v), want ECONNREFUSED", res.OK, res.Message, res.Err)
	}
}

func TestTCPCheckBind(t *testing.T) {
	testenv.RequireRoot(t) // SO_BINDTODEVICE and SO_MARK need CAP_NET_RAW / CAP_NET_ADMIN
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peers := acceptor(t, l)
	addr := netip.MustParseAddrPort(l.Addr().String())
	tests := []struct {
		name  string
		edit  func(c *config.Checker)
		ok    bool
		local string // the peer address the server must see ("" any)
	}{
		{"bindto", func(c *config.Checker) { c.BindTo = netip.MustParseAddr("127.0.0.2") }, true, "127.0.0.2:"},
		{"bindto and bind_port", func(c *config.Checker) {
			c.BindTo, c.BindPort = netip.MustParseAddr("127.0.0.3"), 40123
		}, true, "127.0.0.3:40123"},
		{"bind_port again", func(c *config.Checker) {
			c.BindTo, c.BindPort = netip.MustParseAddr("127.0.0.3"), 40123
		}, true, "127.0.0.3:40123"},
		{"bind_if lo", func(c *config.Checker) { c.BindIf = "lo" }, true, ""},
		{"bind_if missing", func(c *config.Checker) { c.BindIf = "nosuchlink0" }, false, ""},
		{"fwmark", func(c *config.Checker) { c.FWMark = 0x2a }, true, ""},
	}
	for _, async := range []bool{false, true} { // Check, and the scheduler's asynchronous path
		for _, tt := range tests {
			name := tt.name
			if async {
				name += " async"
			}
			t.Run(name, func(t *testing.T) {
				c := checkerFor(config.TCPCheck, addr, time.Second)
				tt.edit(c)
				ck := mustChecker(t, c, CheckerOptions{})
				var res Result
				if async {
					res = checkAsyncOnce(t, ck)
				} else {
					res = ck.Check(context.Background())
				}
				if res.OK != tt.ok {
					t.Fatalf("OK=%v %q, want %v", res.OK, res.Message, tt.ok)
				}
				if !tt.ok {
					return
				}
				if p := <-peers; !strings.HasPrefix(p.String(), tt.local) {
					t.Fatalf("server saw %v, want %s", p, tt.local)
				}
			})
		}
	}
}

// TestTCPCheckMark proves SO_MARK reaches the packets: an nftables counter
// in the director's own namespace counts SYNs carrying the mark.
func TestTCPCheckMark(t *testing.T) {
	testenv.RequireRoot(t)
	if !testnet.Inside() {
		testenv.SkipOrFail(t, "needs the director namespace of testnet.Main (nftables rules must not touch the host)")
	}
	nft := testenv.RequireProgram(t, "nft")
	run := func(args ...string) string {
		out, err := exec.Command(nft, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("nft %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	run("add", "table", "inet", "lvsprobe_mark")
	t.Cleanup(func() { _ = exec.Command(nft, "delete", "table", "inet", "lvsprobe_mark").Run() })
	run("add", "chain", "inet", "lvsprobe_mark", "out", "{ type filter hook output priority 0; }")
	run("add", "rule", "inet", "lvsprobe_mark", "out", "tcp", "flags", "syn", "meta", "mark", "0x2a", "counter")

	l := listenLoopback(t)
	acceptor(t, l)
	c := checkerFor(config.TCPCheck, netip.MustParseAddrPort(l.Addr().String()), time.Second)
	c.FWMark = 0x2a
	if res := mustChecker(t, c, CheckerOptions{}).Check(context.Background()); !res.OK {
		t.Fatal(res.Message)
	}
	if out := run("list", "chain", "inet", "lvsprobe_mark", "out"); !strings.Contains(out, "packets 1 ") {
		t.Fatalf("marked SYN not counted:\n%s", out)
	}
}
