package prober

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestHTTPRequest(t *testing.T) {
	tests := []struct {
		proto, vhost, urlHost string
		want                  string
	}{
		{"1.0", "", "", "GET /p?q=1 HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1:PORT\r\n\r\n"},
		{"1.0C", "www.example.test", "", "GET /p?q=1 HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: www.example.test\r\nConnection: close\r\n\r\n"},
		{"1.1", "www.example.test", "url.example.test", "GET /p?q=1 HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nHost: url.example.test\r\nConnection: close\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			s := serveRaw(t, listenLoopback(t), nil, reply(ok200("x")))
			c := checkerFor(config.HTTPGet, s.addr, 2*time.Second, &config.URL{Path: "/p?q=1", VirtualHost: tt.urlHost})
			c.HTTP.Protocol, c.HTTP.VirtualHost = tt.proto, tt.vhost
			if res := mustChecker(t, c, CheckerOptions{}).Check(context.Background()); !res.OK {
				t.Fatalf("check failed: %s", res.Message)
			}
			want := strings.ReplaceAll(tt.want, "PORT", strconvPort(s))
			if got := <-s.reqs; got != want {
				t.Fatalf("request %q, want %q", got, want)
			}
		})
	}
}

func strconvPort(s *rawServer) string {
	return strings.TrimPrefix(s.addr.String(), s.addr.Addr().String()+":")
}

func TestHTTPChecks(t *testing.T) {
	body := "<html>service up, version 42</html>\n"
	tests := []struct {
		name    string
		serve   func(net.Conn)
		url     config.URL
		cap     int64
		ok      bool
		message string // substring of the result message
	}{
		{"status ok", reply(ok200(body)), config.URL{Path: "/"}, 0, true, "GET /; status 200; ok"},
		{"digest ok", reply(ok200(body)), config.URL{Path: "/", Digest: md5hex(body)}, 0, true, "digest ok"},
		{"digest upper case", reply(ok200(body)), config.URL{Path: "/", Digest: strings.ToUpper(md5hex(body))}, 0, true, "digest ok"},
		{"digest mismatch", reply(ok200(body + "changed")), config.URL{Path: "/", Digest: md5hex(body)}, 0, false, "digest " + md5hex(body+"changed") + ", want"},
		{"status 500", reply("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"), config.URL{Path: "/"}, 0, false, "status 500 not in 200-299"},
		{"status range", reply("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
			config.URL{Path: "/", StatusCodes: []config.StatusRange{{Low: 200, High: 200}, {Low: 400, High: 499}}}, 0, true, "status 404; ok"},
		{"chunked digest", reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"),
			config.URL{Path: "/", Digest: md5hex("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")}, 0, true, "digest ok"}, // framing included, as keepalived
		{"regex match", reply(ok200(body)), config.URL{Path: "/", Regex: `version \d+`}, 0, true, "regex ok"},
		{"regex miss", reply(ok200(body)), config.URL{Path: "/", Regex: `version [a-z]+`}, 0, false, "did not match"},
		{"regex no match", reply(ok200(body)), config.URL{Path: "/", Regex: `error`, RegexNoMatch: true}, 0, true, "regex ok"},
		{"regex no match hit", reply(ok200(body)), config.URL{Path: "/", Regex: `service`, RegexNoMatch: true}, 0, false, "matched (regex_no_match)"},
		{"body over cap", reply(ok200(strings.Repeat("z", 2000))), config.URL{Path: "/", Digest: md5hex("z")}, 1000, false, "body larger than the cap"},
		{"status only skips body", reply(ok200(strings.Repeat("z", 2000))), config.URL{Path: "/"}, 1000, true, "status 200; ok"},
		{"garbage", reply("SSH-2.0-OpenSSH_9.2p1\r\n"), config.URL{Path: "/"}, 0, false, "malformed HTTP response"},
		{"closed at once", func(net.Conn) {}, config.URL{Path: "/"}, 0, false, "unexpected EOF"},
		{"short body", reply("HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\nshort"), config.URL{Path: "/", Digest: md5hex("short")}, 0, false, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serveRaw(t, listenLoopback(t), nil, tt.serve)
			u := tt.url
			ck := mustChecker(t, checkerFor(config.HTTPGet, s.addr, 2*time.Second, &u), CheckerOptions{BodyCap: tt.cap})
			res := ck.Check(context.Background())
			if res.OK != tt.ok || !strings.Contains(res.Message, tt.message) {
				t.Fatalf("OK=%v %q (err %v), want OK=%v containing %q", res.OK, res.Message, res.Err, tt.ok, tt.message)
			}
			if !res.OK && res.Err == nil {
				t.Fatal("failed check without Err")
			}
			if !strings.HasPrefix(res.Message, "HTTP_GET "+s.addr.String()+": ") {
				t.Fatalf("message %q does not name the check", res.Message)
			}
		})
	}
}

func TestHTTPEveryURLMustPass(t *testing.T) {
	s := serveRaw(t, listenLoopback(t), nil, reply(ok200("a")))
	good, bad := &config.URL{Path: "/a", Digest: md5hex("a")}, &config.URL{Path: "/b", Digest: md5hex("b")}
	res := mustChecker(t, checkerFor(config.HTTPGet, s.addr, 2*time.Second, good, bad), CheckerOptions{}).Check(context.Background())
	if res.OK || !strings.Contains(res.Message, "GET /a; status 200; digest ok; GET /b; status 200; digest") {
		t.Fatalf("got OK=%v %q", res.OK, res.Message)
	}
}

// TestHTTPTimeoutBoundsWholeExchange: a server that trickles one byte at
// a time never lets a read time out, yet the check must fail at
// connect_timeout (keepalived #1822).
func TestHTTPTimeoutBoundsWholeExchange(t *testing.T) {
	tests := []struct {
		name  string
		serve func(stop chan struct{}) func(net.Conn)
	}{
		{"trickle", func(stop chan struct{}) func(net.Conn) {
			return func(c net.Conn) {
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"))
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for range 1000 { // bounded: 20 s at most
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}},
		{"silent", func(stop chan struct{}) func(net.Conn) {
			return func(net.Conn) { <-stop }
		}},
	}
	const timeout = 300 * time.Millisecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop := make(chan struct{})
			defer close(stop)
			s := serveRaw(t, listenLoopback(t), nil, tt.serve(stop))
			ck := mustChecker(t, checkerFor(config.HTTPGet, s.addr, timeout, &config.URL{Path: "/", Digest: md5hex("x")}), CheckerOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), timeout+2*time.Second)
			defer cancel()
			res := ck.Check(ctx)
			if res.OK || !errors.Is(res.Err, os.ErrDeadlineExceeded) {
				t.Fatalf("got OK=%v %q (%v), want a deadline failure", res.OK, res.Message, res.Err)
			}
			if ctx.Err() != nil {
				t.Fatalf("check returned after the outer deadline (took %v)", res.Duration)
			}
		})
	}
}

func TestHTTPHonoursCancel(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	s := serveRaw(t, listenLoopback(t), nil, func(net.Conn) { <-stop })
	ck := mustChecker(t, checkerFor(config.HTTPGet, s.addr, time.Hour, &config.URL{Path: "/"}), CheckerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() { done <- ck.Check(ctx) }()
	<-s.reqs // the request arrived: the checker is now waiting for the answer
	cancel()
	wait, stopWait := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopWait()
	select {
	case res := <-done:
		if res.OK {
			t.Fatalf("cancelled check passed: %s", res.Message)
		}
	case <-wait.Done():
		t.Fatal("check did not return after cancel")
	}
}

func TestHTTPCheckerConfigErrors(t *testing.T) {
	addr := netipAddrPort("127.0.0.1:80")
	tests := []struct {
		name string
		edit func(c *config.Checker)
		want error
	}{
		{"protocol", func(c *config.Checker) { c.HTTP.Protocol = "2" }, errConfig},
		{"no url", func(c *config.Checker) { c.HTTP.URLs = nil }, errConfig},
		{"bad digest", func(c *config.Checker) { c.HTTP.URLs[0].Digest = "xyz" }, errConfig},
		{"path with space", func(c *config.Checker) { c.HTTP.URLs[0].Path = "/a b" }, errConfig},
		{"vhost with CRLF", func(c *config.Checker) { c.HTTP.VirtualHost = "a\r\nX-Evil: 1" }, errConfig},
		{"pcre only", func(c *config.Checker) { c.HTTP.URLs[0].Regex = `(?<=a)b` }, nil},
		{"option", func(c *config.Checker) {
			c.HTTP.URLs[0].Regex, c.HTTP.URLs[0].RegexOptions = "a", []string{"extended"}
		}, ErrUnsupported},
		{"no address", func(c *config.Checker) { c.ConnectPort = 0 }, errConfig},
		{"missing CA", func(c *config.Checker) { c.Type = config.SSLGet }, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checkerFor(config.HTTPGet, addr, time.Second, &config.URL{Path: "/"})
			tt.edit(c)
			_, err := NewChecker(c, CheckerOptions{SSL: config.SSLDefs{CAFile: "/nonexistent/ca.pem"}})
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCheckerKey(t *testing.T) {
	addr := netipAddrPort("198.18.1.2:80")
	base := func() *config.Checker {
		return checkerFor(config.HTTPGet, addr, time.Second, &config.URL{Path: "/", Digest: md5hex("a")})
	}
	key := func(c *config.Checker) string { return mustChecker(t, c, CheckerOptions{}).Key() }
	k0 := key(base())
	if k0 != key(base()) {
		t.Fatal("equal blocks, different keys")
	}
	for name, edit := range map[string]func(c *config.Checker){
		"port":     func(c *config.Checker) { c.ConnectPort = 81 },
		"timeout":  func(c *config.Checker) { c.ConnectTimeout = 2 * time.Second },
		"fwmark":   func(c *config.Checker) { c.FWMark = 7 },
		"bind_if":  func(c *config.Checker) { c.BindIf = "eth0" },
		"protocol": func(c *config.Checker) { c.HTTP.Protocol = "1.1" },
		"vhost":    func(c *config.Checker) { c.HTTP.VirtualHost = "a.test" },
		"digest":   func(c *config.Checker) { c.HTTP.URLs[0].Digest = md5hex("b") },
		"status":   func(c *config.Checker) { c.HTTP.URLs[0].StatusCodes = []config.StatusRange{{Low: 200, High: 200}} },
		"type":     func(c *config.Checker) { c.Type = config.SSLGet },
		"regex":    func(c *config.Checker) { c.HTTP.URLs[0].Regex = "a" },
	} {
		c := base()
		edit(c)
		if key(c) == k0 {
			t.Errorf("%s: key unchanged: %s", name, k0)
		}
	}
	tcp := func() *config.Checker { return checkerFor(config.TCPCheck, addr, time.Second) }
	if k1, k2 := key(tcp()), key(tcp()); k1 == k0 || k1 != k2 {
		t.Error("TCP_CHECK key not distinct or not stable")
	}
}

// tlsServerConfig returns a server configuration for names, signed by a
// fresh CA, and the CA's certificate file.
func tlsServerConfig(t *testing.T, names ...string) (*tls.Config, string) {
	t.Helper()
	ca := newTestCA(t)
	return &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, names...).TLS(t)}}, ca.WriteFile(t)
}
