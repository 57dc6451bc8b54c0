package testnet

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTopology(t *testing.T) {
	n := New(t, Options{RealServers: 2, ExtraAddrs: 3})
	for _, rs := range n.RealServers {
		if len(rs.Addrs) != 4 || rs.Addrs[0] != rs.Addr {
			t.Fatalf("%s: addrs %v, want 4 starting with %v", rs.Name, rs.Addrs, rs.Addr)
		}
		if !netip.MustParsePrefix("198.18.0.0/15").Contains(rs.Addr) {
			t.Fatalf("%s: address %v outside 198.18.0.0/15", rs.Name, rs.Addr)
		}
		// No route out of the real server: only the connected /24.
		routes := rs.Run(t, "ip", "-4", "route", "show")
		if strings.Contains(routes, "default") || strings.Count(strings.TrimSpace(routes), "\n") != 0 {
			t.Errorf("%s: routes %q, want only the connected subnet", rs.Name, routes)
		}
		l := rs.Listen(t, "tcp", ":7000")
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte(rs.Name + "\n"))
				_ = c.Close()
			}
		}()
		for _, a := range rs.Addrs {
			c, err := net.Dial("tcp", netip.AddrPortFrom(a, 7000).String())
			if err != nil {
				t.Fatalf("dial %v: %v", a, err)
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil || strings.TrimSpace(line) != rs.Name {
				t.Fatalf("from %v: %q, %v; want %q", a, line, err, rs.Name)
			}
		}
	}
	// The director itself has no route out either.
	if _, err := net.Dial("tcp", "198.51.100.1:80"); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial outside the topology: %v, want ENETUNREACH", err)
	}
}

func TestCleanupRemovesNamespaces(t *testing.T) {
	var name string
	t.Run("build", func(t *testing.T) {
		name = New(t, Options{}).RealServers[0].Name
		if _, err := os.Stat(netnsDir + "/" + name); err != nil {
			t.Fatalf("namespace missing while in use: %v", err)
		}
	})
	if name == "" {
		t.Skip("topology not built")
	}
	if _, err := os.Stat(netnsDir + "/" + name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("namespace %s left after cleanup: %v", name, err)
	}
}

func TestNginxStopStartBlackHole(t *testing.T) {
	rs := New(t, Options{}).RealServers[0]
	ng := rs.StartNginx(t, NginxOptions{Files: map[string][]byte{"/a.txt": []byte("hello\n")}, TLSPort: 443, ServerNames: []string{"www.example.test"}})
	get := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", ng.URL())
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "GET /a.txt HTTP/1.0\r\n\r\n"); err != nil {
			return "", err
		}
		b, err := io.ReadAll(c)
		return string(b), err
	}
	body, err := get()
	if err != nil || !strings.HasPrefix(body, "HTTP/1.1 200") || !strings.HasSuffix(body, "\r\n\r\nhello\n") {
		t.Fatalf("GET: %q, %v", body, err)
	}
	ng.Stop(t)
	if _, err := get(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET after stop: %v, want ECONNREFUSED", err)
	}
	ng.Start(t)
	rs.BlackHole(t)
	if _, err := get(); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("GET black-holed: %v, want a timeout", err)
	}
	rs.Restore(t)
	if body, err := get(); err != nil || !strings.HasSuffix(body, "hello\n") {
		t.Fatalf("GET restored: %q, %v", body, err)
	}
}
