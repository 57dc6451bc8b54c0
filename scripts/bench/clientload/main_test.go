//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.2")
	tests := []struct {
		in   string
		want target
		ok   bool
	}{
		{"198.18.0.2:40000-40015", target{a, 40000, 40015}, true},
		{"198.18.0.2:80", target{a, 80, 80}, true},
		{"198.18.0.2:0-5", target{}, false},
		{"198.18.0.2", target{}, false},
		{"198.18.0.2:2-1", target{}, false},
		{"198.18.0.2:1-65536", target{}, false},
		{"::1:80", target{}, false},
		{"host:80", target{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseTarget(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseTarget(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseTarget: any input is a target with an IPv4 address and
// 0 < first <= last, or an error; never a panic.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"198.18.0.2:40000-40015", "198.18.0.2:80", "1.2.3.4:5-", ":", "a:b-c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTarget(s)
		if err == nil && (!got.addr.Is4() || got.first == 0 || got.first > got.last) {
			t.Fatalf("parseTarget(%q) = %+v without an error", s, got)
		}
	})
}

// TestLoad runs the load on loopback against a server that answers 200 on
// one port, a port where nothing listens, a server that accepts and never
// answers, and one that answers 500, and checks each port's results.
func TestLoad(t *testing.T) {
	okLn := listen(t, "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ReadHeaderTimeout: time.Second}
	go srv.Serve(okLn)
	t.Cleanup(func() { srv.Close() })
	base := okLn.Addr().(*net.TCPAddr).Port
	// The three other ports follow base if they are free; find a run of 4.
	var lns []net.Listener
	for try := 0; ; try++ {
		if try > 50 {
			t.Skip("no 4 consecutive free loopback ports")
		}
		lns = lns[:0]
		ok := true
		for i := 1; i <= 3 && ok; i++ {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(base+i)).String())
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		if ok {
			break
		}
		for _, ln := range lns {
			ln.Close()
		}
		okLn.Close()
		okLn = listen(t, "127.0.0.1:0")
		go srv.Serve(okLn)
		base = okLn.Addr().(*net.TCPAddr).Port
	}
	lns[0].Close() // base+1: refused
	go func() {    // base+2: accepts, never answers
		var held []net.Conn
		for {
			c, err := lns[1].Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() { lns[1].Close() })
	bad := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}), ReadHeaderTimeout: time.Second}
	go bad.Serve(lns[2]) // base+3: 500
	t.Cleanup(func() { bad.Close() })

	out := filepath.Join(t.TempDir(), "lines")
	o := options{target: target{netip.MustParseAddr("127.0.0.1"), uint16(base), uint16(base + 3)}, conns: 2, rate: 50,
		timeout: 200 * time.Millisecond, connect: 200 * time.Millisecond, max: 400}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{w: bufio.NewWriter(f), counts: map[result]int64{}}
	run(ctx, o, rec)
	if err := rec.w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	per := map[int]map[string]int{}
	newConns := map[int]int{}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		var ms int64
		var port, nc, us int
		var res string
		if _, err := fmt.Sscan(l, &ms, &port, &res, &nc, &us); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if per[port-base] == nil {
			per[port-base] = map[string]int{}
		}
		per[port-base][res]++
		newConns[port-base] += nc
	}
	if n := len(lines); n > 400 {
		t.Errorf("%d requests, -max was 400", n)
	}
	want := map[int]string{0: "ok", 1: "refused", 2: "timeout", 3: "status"}
	for i, res := range want {
		if per[i][res] == 0 || len(per[i]) != 1 {
			t.Errorf("port base+%d: results %v, want only %s", i, per[i], res)
		}
	}
	if newConns[0] != 2 {
		t.Errorf("port base: %d connections opened, want 2 (keep-alive)", newConns[0])
	}
	if newConns[1] != per[1]["refused"] {
		t.Errorf("refused port: %d connects for %d requests, want one each", newConns[1], per[1]["refused"])
	}
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
