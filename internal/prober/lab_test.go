package prober

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// labImage renders a real PNG for nginx to serve.
func labImage(t *testing.T, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 256, 256))
	for y := range 256 {
		for x := range 256 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), seed, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// md5sum runs md5sum(1) on path, as an operator would to fill a digest line.
func md5sum(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(testenv.RequireProgram(t, "md5sum"), path).Output()
	if err != nil {
		t.Fatalf("md5sum: %v", err)
	}
	return strings.Fields(string(out))[0]
}

// within runs ck with an outer deadline of bound plus slack, and fails the
// test when the check was still running at that deadline.
func within(t *testing.T, ck Checker, bound time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound+time.Second)
	defer cancel()
	res := ck.Check(ctx)
	if ctx.Err() != nil {
		t.Fatalf("%s: still running %v after its bound %v: %s", ck, time.Second, bound, res.Message)
	}
	return res
}

// expect runs ck within bound and checks its outcome.
func expect(t *testing.T, ck Checker, bound time.Duration, ok bool, message string) Result {
	t.Helper()
	res := within(t, ck, bound)
	if res.OK != ok || !strings.Contains(res.Message, message) {
		t.Fatalf("OK=%v %q (err %v), want OK=%v containing %q", res.OK, res.Message, res.Err, ok, message)
	}
	return res
}

// TestLabNginx runs the checkers against a real nginx in a real-server
// namespace and breaks it in every way the issue lists, one after the
// other, checking each failure is seen within its bound and that the
// check passes again once the fault is fixed.
func TestLabNginx(t *testing.T) {
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	ca := testnet.NewCA(t)
	logo := labImage(t, 1)
	ng := rs.StartNginx(t, testnet.NginxOptions{
		Files:       map[string][]byte{"/img/logo.png": logo},
		TLSPort:     443,
		Cert:        ca.Issue(t, "www.example.test"),
		ServerNames: []string{"www.example.test"},
	})
	digest := md5sum(t, filepath.Join(ng.Root, "img", "logo.png"))
	if digest != md5hex(string(logo)) {
		t.Fatalf("md5sum %s disagrees with crypto/md5", digest)
	}
	const timeout = 500 * time.Millisecond
	http := func(path, dig string) Checker {
		return mustChecker(t, checkerFor(config.HTTPGet, netip.AddrPortFrom(rs.Addr, 80), timeout, &config.URL{Path: path, Digest: dig}), CheckerOptions{})
	}
	ssl := func(dig string) Checker {
		c := checkerFor(config.SSLGet, netip.AddrPortFrom(rs.Addr, 443), timeout, &config.URL{Path: "/img/logo.png", Digest: dig})
		c.HTTP.EnableSNI, c.HTTP.VirtualHost, c.HTTP.Protocol = true, "www.example.test", "1.1"
		return mustChecker(t, c, CheckerOptions{SSL: config.SSLDefs{CAFile: ca.WriteFile(t)}})
	}
	tcp := mustChecker(t, checkerFor(config.TCPCheck, netip.AddrPortFrom(rs.Addr, 80), timeout), CheckerOptions{})
	get := http("/img/logo.png", digest)
	sget := ssl(digest)
	healthy := func(t *testing.T) {
		t.Helper()
		expect(t, tcp, timeout, true, "connected; ok")
		expect(t, get, timeout, true, "status 200; digest ok; ok")
		expect(t, sget, timeout, true, "status 200; digest ok; ok")
	}

	t.Run("healthy", healthy)
	t.Run("genhash agrees", func(t *testing.T) {
		got, err := FetchURLs(context.Background(), checkerFor(config.HTTPGet, netip.AddrPortFrom(rs.Addr, 80), timeout, &config.URL{Path: "/img/logo.png"}), CheckerOptions{})
		if err != nil || len(got) != 1 || got[0].Digest != digest || got[0].BodyBytes != int64(len(logo)) {
			t.Fatalf("FetchURLs: %+v, %v; want digest %s", got, err, digest)
		}
	})
	t.Run("status 500", func(t *testing.T) {
		expect(t, http("/status500", ""), timeout, false, "status 500 not in 200-299")
	})
	t.Run("changed file", func(t *testing.T) {
		ng.WriteFile(t, "/img/logo.png", labImage(t, 2))
		expect(t, get, timeout, false, "digest "+md5hex(string(labImage(t, 2)))+", want "+digest)
		expect(t, sget, timeout, false, "want "+digest)
		ng.WriteFile(t, "/img/logo.png", logo)
		healthy(t)
	})
	t.Run("process stopped", func(t *testing.T) {
		ng.Stop(t)
		for _, ck := range []Checker{tcp, get, sget} {
			res := expect(t, ck, timeout, false, "connect: ")
			if !errors.Is(res.Err, syscall.ECONNREFUSED) {
				t.Fatalf("%s: %v, want a RST (ECONNREFUSED)", ck, res.Err)
			}
		}
		ng.Start(t)
		healthy(t)
	})
	t.Run("black-holed", func(t *testing.T) {
		rs.BlackHole(t)
		for _, ck := range []Checker{tcp, get, sget} {
			res := expect(t, ck, timeout, false, "connect: ")
			if !errors.Is(res.Err, context.DeadlineExceeded) && !errors.Is(res.Err, os.ErrDeadlineExceeded) {
				t.Fatalf("%s: %v, want a timeout", ck, res.Err)
			}
		}
		rs.Restore(t)
		healthy(t)
	})
	t.Run("wrong CA", func(t *testing.T) {
		c := checkerFor(config.SSLGet, netip.AddrPortFrom(rs.Addr, 443), timeout, &config.URL{Path: "/img/logo.png"})
		c.HTTP.EnableSNI, c.HTTP.VirtualHost = true, "www.example.test"
		other := mustChecker(t, c, CheckerOptions{SSL: config.SSLDefs{CAFile: testnet.NewCA(t).WriteFile(t)}})
		expect(t, other, timeout, false, "verify server certificate")
	})
	t.Run("TLS to a plain port", func(t *testing.T) {
		c := checkerFor(config.SSLGet, netip.AddrPortFrom(rs.Addr, 80), timeout, &config.URL{Path: "/img/logo.png"})
		expect(t, mustChecker(t, c, CheckerOptions{}), timeout, false, "TLS handshake")
	})
}

// misbehaviour is what the lab's Go real server does with a request.
type misbehaviour string

const (
	good      misbehaviour = "good"
	trickle   misbehaviour = "trickle"
	gigabyte  misbehaviour = "gigabyte"
	endless   misbehaviour = "endless"
	garbage   misbehaviour = "garbage"
	silent    misbehaviour = "silent"
	tlsBroken misbehaviour = "tls-broken"
)

// TestLabMisbehavingServer runs HTTP_GET and SSL_GET against a Go server in
// a real-server namespace that lies, stalls, floods or sends garbage, and
// checks each is a failed check within connect_timeout that passes again
// once the server behaves.
func TestLabMisbehavingServer(t *testing.T) {
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	var mode atomic.Value
	mode.Store(good)
	const body = "all good\n"
	serve := func(c net.Conn) {
		stop := make(chan struct{})
		defer close(stop)
		switch mode.Load().(misbehaviour) {
		case good, tlsBroken:
			_, _ = c.Write([]byte(ok200(body)))
		case trickle:
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"))
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for range 1000 { // bounded: 10 s at most, and stops when the checker resets
				<-tick.C
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		case gigabyte, endless:
			head := "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n"
			if mode.Load() == endless {
				head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			}
			_, _ = c.Write([]byte(head))
			chunk := make([]byte, 64<<10)
			frame := []byte(fmt.Sprintf("%x\r\n%s\r\n", len(chunk), chunk))
			for range 1 << 14 { // bounded: 1 GiB of generated bytes, never stored
				out := chunk
				if mode.Load() == endless {
					out = frame
				}
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		case garbage:
			junk := make([]byte, 512)
			_, _ = rand.Read(junk)
			_, _ = c.Write(junk)
		case silent:
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = c.Read(make([]byte, 1)) // returns when the checker resets
		}
	}
	plain := serveRaw(t, rs.Listen(t, "tcp", rs.Addr.String()+":8080"), nil, serve)
	tlsCfg, _ := tlsServerConfig(t, "www.example.test")
	secure := serveRaw(t, rs.Listen(t, "tcp", rs.Addr.String()+":8443"), tlsCfg, serve)
	broken := rs.Listen(t, "tcp", rs.Addr.String()+":9443") // accepts, then answers TLS with plain HTTP
	go func() {
		for {
			c, err := broken.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(ok200(body)))
			_ = c.Close()
		}
	}()

	const timeout = 500 * time.Millisecond
	url := &config.URL{Path: "/", Digest: md5hex(body)}
	get := mustChecker(t, checkerFor(config.HTTPGet, plain.addr, timeout, url), CheckerOptions{BodyCap: 1 << 20})
	sget := mustChecker(t, checkerFor(config.SSLGet, secure.addr, timeout, url), CheckerOptions{BodyCap: 1 << 20})
	brokenTLS := mustChecker(t, checkerFor(config.SSLGet, netip.AddrPortFrom(rs.Addr, 9443), timeout, url), CheckerOptions{})

	tests := []struct {
		mode    misbehaviour
		message string
		timeout bool // the failure is connect_timeout expiring
	}{
		{trickle, "read body", true},
		{gigabyte, "body larger than the cap", false},
		{endless, "body larger than the cap", false},
		{garbage, "malformed HTTP response", false},
		{silent, "read response", true},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			mode.Store(tt.mode)
			for _, ck := range []Checker{get, sget} {
				res := expect(t, ck, timeout, false, tt.message)
				if tt.timeout != errors.Is(res.Err, os.ErrDeadlineExceeded) {
					t.Fatalf("%s: %v; want timeout=%v", ck, res.Err, tt.timeout)
				}
			}
			mode.Store(good)
			expect(t, get, timeout, true, "digest ok; ok")
			expect(t, sget, timeout, true, "digest ok; ok")
		})
	}
	t.Run("TLS handshake failure", func(t *testing.T) {
		expect(t, brokenTLS, timeout, false, "TLS handshake")
	})
}

// TestLabNoTimeWait checks that checks leave no TIME_WAIT socket on the
// director: TCP_CHECK resets its connection, HTTP_GET resets after the
// answer, so no socket to the real server is left in any state (a
// graceful close would leave one in FIN_WAIT and then TIME_WAIT for a
// minute). A graceful close by the director is the control: it must show
// up, or the test could not see a failure.
func TestLabNoTimeWait(t *testing.T) {
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	rs.StartNginx(t, testnet.NginxOptions{Files: map[string][]byte{"/index.html": []byte("hi\n")}})
	addr := netip.AddrPortFrom(rs.Addr, 80)
	left := func() []testnet.TCPSocket {
		t.Helper()
		socks, err := testnet.TCPSockets()
		if err != nil {
			t.Fatal(err)
		}
		var out []testnet.TCPSocket
		for _, s := range socks {
			if s.Remote == addr {
				out = append(out, s)
			}
		}
		return out
	}
	tcp := mustChecker(t, checkerFor(config.TCPCheck, addr, time.Second), CheckerOptions{})
	get := mustChecker(t, checkerFor(config.HTTPGet, addr, time.Second, &config.URL{Path: "/index.html", Digest: md5hex("hi\n")}), CheckerOptions{})
	for range 50 {
		for _, ck := range []Checker{tcp, get} {
			if res := within(t, ck, time.Second); !res.OK {
				t.Fatal(res.Message)
			}
		}
	}
	if socks := left(); len(socks) != 0 {
		t.Fatalf("after 100 checks the director still holds %v, want nothing", socks)
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if socks := left(); len(socks) != 1 {
		t.Fatalf("control: after a graceful close the director holds %v, want one closing socket", socks)
	}
}
