package prober

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// rawServer is a Go test server that reads each request's head and then
// answers with a handler writing raw bytes: a real server that may lie,
// stall, flood or send garbage.
type rawServer struct {
	addr netip.AddrPort
	reqs chan string   // request heads, most recent last (dropped when full)
	snis chan string   // SNI names of TLS connections
	tls  *tls.Config   // nil: plain TCP
	stop chan struct{} // closed on cleanup: handlers waiting on it return
}

// serveRaw serves l with fn until the test ends.
func serveRaw(t testing.TB, l net.Listener, cfg *tls.Config, fn func(c net.Conn)) *rawServer {
	t.Helper()
	s := &rawServer{
		addr: netip.MustParseAddrPort(l.Addr().String()),
		reqs: make(chan string, 64), snis: make(chan string, 64),
		tls: cfg, stop: make(chan struct{}),
	}
	if cfg != nil {
		cfg = cfg.Clone()
		cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			select {
			case s.snis <- hi.ServerName:
			default:
			}
			return nil, nil
		}
	}
	t.Cleanup(func() { close(s.stop); _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }() // the TLS connection, once wrapped: close_notify
				if cfg != nil {
					c = tls.Server(c, cfg)
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					line, err := br.ReadString('\n')
					head.WriteString(line)
					if err != nil {
						return
					}
					if line == "\r\n" || line == "\n" {
						break
					}
				}
				_ = c.SetReadDeadline(time.Time{})
				select {
				case s.reqs <- head.String():
				default:
				}
				fn(c)
			}()
		}
	}()
	return s
}

// listenLoopback opens a TCP listener on 127.0.0.1.
func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// reply returns a handler that writes s.
func reply(s string) func(net.Conn) {
	return func(c net.Conn) { _, _ = c.Write([]byte(s)) }
}

// ok200 is a complete response with body.
func ok200(body string) string {
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
}

// checkerFor builds a checker block against addr.
func checkerFor(typ config.CheckerType, addr netip.AddrPort, timeout time.Duration, urls ...*config.URL) *config.Checker {
	c := &config.Checker{
		Pos: config.Pos{File: "test.conf", Line: 1}, Type: typ,
		ConnectIP: addr.Addr(), ConnectPort: addr.Port(), ConnectTimeout: timeout,
	}
	if typ == config.HTTPGet || typ == config.SSLGet {
		c.HTTP = &config.HTTPOptions{Protocol: "1.0", URLs: urls}
	}
	return c
}

// mustChecker builds the checker or fails the test.
func mustChecker(t testing.TB, c *config.Checker, opts CheckerOptions) Checker {
	t.Helper()
	ck, err := NewChecker(c, opts)
	if err != nil {
		t.Fatalf("NewChecker: %v", err)
	}
	return ck
}

func netipAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func newTestCA(t testing.TB) *testnet.CA { return testnet.NewCA(t) }
