package prober

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// udpBlock is a UDP_CHECK block.
func udpBlock(addr netip.AddrPort, timeout time.Duration, o config.UDPOptions) *config.Checker {
	c := checkerFor(config.UDPCheck, addr, timeout)
	if o.MaxReplyLen == 0 {
		o.MaxReplyLen = 255
	}
	c.UDP = &o
	return c
}

// TestLabUDP runs UDP_CHECK against a Go UDP server in a real-server
// namespace: echo, wrong reply, silence, stopped, black-holed.
func TestLabUDP(t *testing.T) {
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	top := t // servers restarted in subtests outlive them
	const timeout = 300 * time.Millisecond
	ep := netip.AddrPortFrom(rs.Addr, 5300)
	srv := startUDPEcho(t, rs, 5300)
	plain := mustChecker(t, udpBlock(ep, timeout, config.UDPOptions{}), CheckerOptions{})
	reply := mustChecker(t, udpBlock(ep, timeout, config.UDPOptions{Payload: []byte("ping"), RequireReply: true}), CheckerOptions{})
	match := mustChecker(t, udpBlock(ep, timeout, config.UDPOptions{Payload: []byte("ping"), RequireReply: true,
		Reply: []byte("pi\x00g"), ReplyMask: []byte{0xff, 0xff, 0x00, 0xff}, MinReplyLen: 4, MaxReplyLen: 8}), CheckerOptions{})
	healthy := func(t *testing.T) {
		t.Helper()
		expect(t, plain, timeout, true, "reply of 32 bytes; ok")
		expect(t, reply, timeout, true, "reply of 4 bytes; ok")
		expect(t, match, timeout, true, "reply of 4 bytes; ok")
	}
	t.Run("healthy", healthy)
	t.Run("default payload", func(t *testing.T) {
		n := srv.count.Load()
		srv.mode.Store("silent")
		expect(t, plain, timeout, true, "sent 32 bytes; no reply, no ICMP error; ok")
		if srv.count.Load() != n+1 {
			t.Fatalf("server saw %d datagrams, want 1", srv.count.Load()-n)
		}
		srv.mode.Store("echo")
	})
	t.Run("wrong answer", func(t *testing.T) {
		srv.mode.Store("pong")
		res := expect(t, match, timeout, false, "reply byte 1")
		if !errors.Is(res.Err, errUDPReply) {
			t.Fatalf("err %v", res.Err)
		}
		expect(t, reply, timeout, true, "ok") // require_reply without data: any reply
		srv.mode.Store("a much longer reply") // read into max_reply_length+1 bytes, as keepalived does
		expect(t, match, timeout, false, "reply length 9 outside 4..8")
		srv.mode.Store("echo")
		healthy(t)
	})
	t.Run("silent", func(t *testing.T) {
		srv.mode.Store("silent")
		expect(t, reply, timeout, false, "no reply")
		expect(t, plain, timeout, true, "no reply, no ICMP error; ok") // keepalived: silence passes without require_reply
		srv.mode.Store("echo")
		healthy(t)
	})
	t.Run("black-holed", func(t *testing.T) {
		rs.BlackHole(t)
		expect(t, reply, timeout, false, "no reply")
		rs.Restore(t)
		healthy(t)
	})
	t.Run("stopped", func(t *testing.T) {
		_ = srv.pc.Close()
		for _, ck := range []Checker{plain, reply} {
			res := expect(t, ck, timeout, false, "receive: ")
			if !errors.Is(res.Err, syscall.ECONNREFUSED) {
				t.Fatalf("%s: err %v, want ECONNREFUSED (ICMP port unreachable)", ck, res.Err)
			}
		}
		srv = startUDPEcho(top, rs, 5300)
		healthy(t)
	})
}

// TestDialUDPLocal: dialUDP binds to bindto and bind_port as configured,
// each alone or both, and leaves the choice to the kernel when neither is
// set. Loopback only.
func TestDialUDPLocal(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	to := srv.LocalAddr().(*net.UDPAddr).AddrPort()
	// A free port for bind_port: the kernel picks one, we release it.
	free, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(free.LocalAddr().(*net.UDPAddr).Port)
	free.Close()
	lo, lo2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	for _, tt := range []struct {
		name string
		opts epOpts
		ip   netip.Addr // want; invalid: any loopback address
		port uint16     // want; 0: any
	}{
		{"neither", epOpts{}, netip.Addr{}, 0},
		{"bindto", epOpts{bind: lo2}, lo2, 0},
		{"bind_port", epOpts{port: port}, netip.Addr{}, port},
		{"both", epOpts{bind: lo2, port: port}, lo2, port},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := endpoint{addr: to, timeout: time.Second, epOpts: &tt.opts}
			c, err := e.dialUDP(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := c.LocalAddr().(*net.UDPAddr).AddrPort()
			if a := got.Addr().Unmap(); (tt.ip.IsValid() && a != tt.ip) || (!tt.ip.IsValid() && a != lo) {
				t.Errorf("local address %v, want %v", got, tt.ip)
			}
			if tt.port != 0 && got.Port() != tt.port {
				t.Errorf("local port %d, want %d", got.Port(), tt.port)
			}
		})
	}
}
