package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

const hostileSchedConf = `virtual_server 198.18.250.1 80 {
    delay_loop 1
    lb_kind NAT
    protocol TCP
    real_server HEALTHY 8080 {
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 2
            retry 0
        }
    }
    real_server HOSTILE 8080 {
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 2
            retry 0
        }
    }
    real_server HOSTILE 8081 {
        HTTP_GET {
            url {
                path /
                digest 444bcb3a3fcf8389296c49467f27e1d6
            }
            connect_timeout 2
            retry 0
        }
    }
    real_server HOSTILE 8082 {
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 2
            retry 0
        }
    }
}
`

// hostileServe runs one misbehaviour on every connection l accepts:
// "slowloris" sends its status line and headers one byte a second,
// "endless" an endless chunked body (failed by the digest check, which
// reads bodies up to a cap), "reset" resets each connection.
func hostileServe(l net.Listener, how string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			switch how {
			case "reset":
				_ = c.(*net.TCPConn).SetLinger(0)
				return
			case "slowloris":
				_, _ = c.Read(make([]byte, 4096))
				for _, b := range []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Slow: " + strings.Repeat("a", 40)) { // bounded: a minute at most
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(time.Second) // the misbehaviour itself: one byte a second
				}
			case "endless":
				_, _ = c.Read(make([]byte, 4096))
				if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
					return
				}
				chunk := fmt.Appendf(nil, "%x\r\n%s\r\n", 16<<10, strings.Repeat("z", 16<<10))
				for range 1 << 16 { // bounded: 1 GiB generated, stops when the checker resets
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}
		}()
	}
}

// tcpSegment returns an IPv4 packet carrying a bare TCP segment with
// flags, checksums filled in.
func tcpSegment(src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags byte) []byte {
	p := make([]byte, 40)
	p[0], p[8], p[9] = 0x45, 64, unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(p[2:], 40)
	copy(p[12:16], src.AsSlice())
	copy(p[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(p[10:], checksum(0, p[:20]))
	t := p[20:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12], t[13] = 5<<4, flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	var pseudo [12]byte
	copy(pseudo[0:4], p[12:16])
	copy(pseudo[4:8], p[16:20])
	pseudo[9] = unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(pseudo[10:], 20)
	binary.BigEndian.PutUint16(t[16:], checksum(sum(0, pseudo[:]), t))
	return p
}

func sum(s uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func checksum(s uint32, b []byte) uint16 {
	s = sum(s, b)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// flood sends count packets from the real server's namespace through a
// raw socket (source addresses are the packets' own: forged), cycling
// through pkts.
func flood(t *testing.T, rs *testnet.RealServer, pkts [][]byte, count int) error {
	t.Helper()
	return rs.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for i := range count {
			p := pkts[i%len(pkts)]
			sa := &unix.SockaddrInet4{Addr: [4]byte(p[16:20])}
			if err := unix.Sendto(fd, p, 0, sa); err != nil && err != unix.ENOBUFS {
				return err
			}
		}
		return nil
	})
}

// TestHostileRealServer runs `lvsprobe run` (SYN prober and passive
// observer on) with one healthy real server and one hostile real server
// that sends its headers a byte a second (slowloris), an endless body,
// resets every connection, and floods the director with RSTs and with
// SYN-ACKs to the SYN prober's ports from an address that was never
// probed. The daemon stays up, the hostile endpoints are down, the
// healthy one is never taken down, and its checks keep their schedule:
// with delay_loop 1 and connect_timeout 2, its checks stay about 1 s
// apart (the hostile checks end at their own connect_timeout).
func TestHostileRealServer(t *testing.T) {
	testenv.RequireRoot(t)
	n := testnet.New(t, testnet.Options{RealServers: 2, ExtraAddrs: 1})
	healthy, hostile := n.RealServers[0], n.RealServers[1]
	var mu sync.Mutex
	var seen []time.Time
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		seen = append(seen, time.Now())
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(healthy.Listen(t, "tcp", ":8080")) }()
	t.Cleanup(func() { _ = srv.Close() })
	for port, how := range map[string]string{"8080": "slowloris", "8081": "endless", "8082": "reset"} {
		go hostileServe(hostile.Listen(t, "tcp", ":"+port), how)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	conf := strings.NewReplacer("HEALTHY", healthy.Addr.String(), "HOSTILE", hostile.Addr.String()).Replace(hostileSchedConf)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	e := &env{stdout: io.Discard, stderr: t.Output(), log: slog.New(slog.NewTextHandler(&logs, nil))}
	sock := filepath.Join(dir, "lvsprobe.sock")
	d := &daemon{socket: sock, metrics: freePort(t)}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, e, []string{"run", "-f", path, "--ipvs=dry-run", "--syn-probe-interval=20ms", "--metrics-listen=" + d.metrics, "--control-socket=" + sock})
	}()
	waitFor(t, 20*time.Second, "SYN probes on", func() (bool, string) {
		return strings.Contains(logs.String(), "SYN probes on"), "not yet"
	})

	// Forged packets from the hostile namespace: RSTs to the director's
	// address on every SYN-probe port and on ephemeral ones, and SYN-ACKs
	// to the probe ports from the hostile real server's second address.
	var pkts [][]byte
	forger := hostile.Addrs[1]
	for p := uint16(61000); p < 62000; p += 7 {
		pkts = append(pkts,
			tcpSegment(hostile.Addr, hostile.Director, 8080, p, uint32(p)*2654435761, 0, 0x04),
			tcpSegment(forger, hostile.Director, 8080, p, uint32(p)*40503, uint32(p)+1, 0x12),
			tcpSegment(hostile.Addr, hostile.Director, 8082, p-20000, 1, 0, 0x14))
	}
	start := time.Now()
	floodErr := make(chan error, 1)
	go func() {
		var err error
		for range 10 { // bounded: 10 bursts of 20,000 packets
			if err = flood(t, hostile, pkts, 20000); err != nil {
				break
			}
			time.Sleep(500 * time.Millisecond) // spacing of the bursts, not synchronisation
		}
		floodErr <- err
	}()
	if err := <-floodErr; err != nil {
		t.Fatalf("flood: %v", err)
	}
	// Keep watching a little after the flood: the slow checks go on.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case c := <-code:
			t.Fatalf("run exited %d under the hostile real server", c)
		case <-time.After(200 * time.Millisecond):
		}
	}
	expo, err := d.scrape(ctx)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	if v, _ := sample(expo, `lvsprobe_synprobe_answers_invalid_total{reason="unknown_target"}`); v == 0 {
		t.Errorf("no forged SYN-ACK reached the SYN receiver:\n%s", grepLines(expo, "lvsprobe_synprobe_answers"))
	}
	resp, err := controlRequest(ctx, sock, "GET", "/status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	st, err := decodeStatus(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("run exited %d", c)
	}

	states := map[string]string{}
	for _, s := range st.Services {
		for _, r := range s.RealServers {
			states[r.Address] = r.State + " " + r.Reason
		}
	}
	t.Logf("states: %v", states)
	if s := states[healthy.Addr.String()+":8080"]; !strings.HasPrefix(s, "up") {
		t.Errorf("healthy real server: %s", s)
	}
	for _, p := range []string{"8080", "8081", "8082"} {
		if s := states[hostile.Addr.String()+":"+p]; !strings.HasPrefix(s, "down") {
			t.Errorf("hostile %s: %s", p, s)
		}
	}
	if strings.Contains(logs.String(), "real server down\" real_server=\"TCP 198.18.250.1:80 -> "+healthy.Addr.String()) {
		t.Errorf("the healthy real server went down:\n%s", logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	var during []time.Time
	for _, at := range seen {
		if at.After(start) {
			during = append(during, at)
		}
	}
	if len(during) < 5 {
		t.Fatalf("%d checks of the healthy real server in %v under attack", len(during), time.Since(start))
	}
	var gaps []time.Duration
	for i := 1; i < len(during); i++ {
		gaps = append(gaps, during[i].Sub(during[i-1]))
	}
	slices.Sort(gaps)
	median, worst := gaps[len(gaps)/2], gaps[len(gaps)-1]
	t.Logf("%d checks of the healthy real server during the attack, gaps: median %v, widest %v", len(during), median, worst)
	// A hostile check that held the healthy one back would do it on every
	// round (the median moves to delay_loop + connect_timeout = 3 s) or
	// for good (an endless body: one gap as long as the attack). A busy
	// CPU delays single rounds only, which the widest gap tolerates.
	if median > 2*time.Second || worst > 10*time.Second {
		t.Errorf("healthy real server's checks held back: median gap %v, widest %v (delay_loop 1s, connect_timeout 2s)", median, worst)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
