package loader

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// mix64 mirrors bpf/passive.c's mix64.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// hsHashOf mirrors bpf/passive.c's hs_hash of a client's handshake with a
// real server under the key seed: the address words as the program loads
// them (native-endian, little on every host the tests run on), the ports
// in network order as 16-bit loads.
func hsHashOf(seed uint64, client, server netip.AddrPort) uint64 {
	words := func(a netip.Addr) (w [4]uint64) {
		var b [16]byte
		if a.Is4() {
			v := a.As4()
			copy(b[:], v[:])
		} else {
			b = a.As16()
		}
		for i := range w {
			w[i] = uint64(b[4*i]) | uint64(b[4*i+1])<<8 | uint64(b[4*i+2])<<16 | uint64(b[4*i+3])<<24
		}
		return w
	}
	cw, sw := words(client.Addr()), words(server.Addr())
	h := mix64(seed ^ (cw[0]<<32 | sw[0]))
	if !client.Addr().Is4() {
		for i := 1; i < 4; i++ {
			h = mix64(h ^ (cw[i]<<32 | sw[i]))
		}
	}
	return mix64(h ^ (uint64(bits.ReverseBytes16(client.Port()))<<16 | uint64(bits.ReverseBytes16(server.Port()))))
}

// hsTimedOf reports whether p times the handshake of client with server
// (bpf/passive.c's hs_timed).
func hsTimedOf(p *Passive, client, server netip.AddrPort) bool {
	return uint32(hsHashOf(p.hsSeed, client, server))&uint32(p.opts.HandshakeSample-1) == 0
}

// sampleDial connects from the client's namespace from a given port.
func sampleDial(client *testnet.RealServer, from, to netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := client.Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(from)}
		var err error
		c, err = d.Dial("tcp", to.String())
		return err
	})
	return c, err
}

// samplePorts returns client ports (from 20000 up) whose handshakes with
// to p times (timed) and does not (untimed), as many of each as asked,
// interleaved: timed first, then the untimed ones each after its turn.
func samplePorts(p *Passive, client netip.Addr, to netip.AddrPort, timed, untimed int, first uint16) []uint16 {
	var ts, us []uint16
	for port := first; len(ts) < timed || len(us) < untimed; port++ {
		if hsTimedOf(p, netip.AddrPortFrom(client, port), to) {
			if len(ts) < timed {
				ts = append(ts, port)
			}
		} else if len(us) < untimed {
			us = append(us, port)
		}
	}
	var out []uint16
	for len(ts)+len(us) > 0 {
		if len(ts) > 0 {
			out, ts = append(out, ts[0]), ts[1:]
		}
		for range 2 {
			if len(us) > 0 {
				out, us = append(out, us[0]), us[1:]
			}
		}
	}
	return out
}

// TestPassiveHandshakeSampleUniform: the sample rule, (hash & (N-1)) == 0
// over the 4-tuple's hash, picks 1 in N connections of one client address
// and one real server (ports consecutive, as a client's ephemeral ports
// are): the count of 100,000 tuples is within 5 standard deviations of
// the binomial mean, for every N.
func TestPassiveHandshakeSampleUniform(t *testing.T) {
	client := netip.MustParseAddr("198.18.1.2")
	server := netip.MustParseAddrPort("198.18.2.2:8080")
	const tuples = 100000
	for _, n := range []int{2, 8, 64, 1024} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			for _, seed := range []uint64{0, 0x9e3779b97f4a7c15, 0x2545f4914f6cdd1d} {
				got := 0
				for i := range tuples {
					c := netip.AddrPortFrom(client, uint16(1024+i%64000))
					if i >= 64000 {
						c = netip.AddrPortFrom(netip.MustParseAddr("198.18.1.3"), c.Port())
					}
					if uint32(hsHashOf(seed, c, server))&uint32(n-1) == 0 {
						got++
					}
				}
				q := 1 / float64(n)
				mean, sd := tuples*q, math.Sqrt(tuples*q*(1-q))
				if math.Abs(float64(got)-mean) > 5*sd {
					t.Errorf("seed %#x: %d of %d tuples timed, want %.0f +- %.0f", seed, got, tuples, mean, 5*sd)
				}
			}
		})
	}
}

// TestPassiveHandshakeSample: with a sample of 1 in N, real connections
// through the director (a real server's kernel answering, refusing, and
// then dropping everything) are timed exactly when their 4-tuple's hash
// selects them, and the untimed ones are still tracked: their SYN-ACK
// frees their way without a miss, their refusal is counted as one, and
// their SYN retransmissions are counted.
func TestPassiveHandshakeSample(t *testing.T) {
	for _, tc := range []struct {
		name             string
		sample           int
		timed, untimed   int // answered connections, by the sample rule
		rTimed, rUntimed int // refused connections
		lost             int // untimed connections to a black hole (plus one timed)
	}{
		{"every handshake", 1, 12, 0, 4, 0, 0},
		{"1 in 2", 2, 6, 12, 2, 4, 3},
		{"1 in 8", 8, 6, 12, 2, 4, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, HandshakeSample: tc.sample})
			client, rs := routed(t, p)
			open := netip.AddrPortFrom(rs.Addr, 8080)
			closed := netip.AddrPortFrom(rs.Addr, 8081)
			if err := p.SetRealServers([]netip.AddrPort{open, closed}); err != nil {
				t.Fatal(err)
			}
			startServer(t, rs, 8080)
			from := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(client.Addr, port) }

			// Answered: each connection adds one to the histogram's
			// count exactly when it is in the sample (unless its SYN
			// was retransmitted, which Karn's rule leaves untimed).
			wantTimed := 0
			for _, port := range samplePorts(p, client.Addr, open, tc.timed, tc.untimed, 20000) {
				timed := hsTimedOf(p, from(port), open)
				before, rt := counters(t, p, open), synRetrans(t, client)
				c, err := sampleDial(client, from(port), open, 5*time.Second)
				if err != nil {
					t.Fatalf("port %d: %v", port, err)
				}
				c.Close()
				after := counters(t, p, open)
				if synRetrans(t, client) != rt {
					t.Logf("port %d: SYN retransmitted (a slow machine): not checked", port)
					continue
				}
				want := uint64(0)
				if timed {
					want = 1
					wantTimed++
				}
				if d := after.Latency.Count() - before.Latency.Count(); d != want || after.SYNACKs-before.SYNACKs != 1 {
					t.Errorf("port %d (timed %v): %d handshakes timed, %d SYN-ACKs; want %d, 1",
						port, timed, d, after.SYNACKs-before.SYNACKs, want)
				}
			}
			if all := counters(t, p, open); all.Latency.Count() != uint64(wantTimed) {
				t.Errorf("%d handshakes timed, want %d", all.Latency.Count(), wantTimed)
			}
			if _, v := hsEntry(t, p, open); inFlight(v) != 0 {
				t.Errorf("%d ways in flight after every SYN-ACK, want 0: %+v", inFlight(v), v.Hs)
			}
			st, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.HandshakeMissed != 0 || st.HandshakeFull != 0 {
				t.Errorf("%d SYN-ACKs found no way, %d SYNs no free way; want 0, 0", st.HandshakeMissed, st.HandshakeFull)
			}

			// Refused: every refusal is one, timed handshake or not.
			ports := samplePorts(p, client.Addr, closed, tc.rTimed, tc.rUntimed, 30000)
			for _, port := range ports {
				if _, err := sampleDial(client, from(port), closed, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("port %d to a closed port: %v, want ECONNREFUSED", port, err)
				}
			}
			got := counters(t, p, closed)
			if got.Refused != uint64(len(ports)) || got.Resets != uint64(len(ports)) || got.Latency.Count() != 0 {
				t.Errorf("refused: %+v; want %d refused of %d RSTs, none timed", got, len(ports), len(ports))
			}
			if _, v := hsEntry(t, p, closed); inFlight(v) != 0 {
				t.Errorf("%d ways in flight after every refusal, want 0", inFlight(v))
			}

			// Unanswered: the client retransmits each SYN after its
			// 1 s RTO; every retransmission is counted, and each
			// handshake's way is marked retransmitted.
			rs.BlackHole(t)
			lost := samplePorts(p, client.Addr, open, 1, tc.lost, 40000)
			before, rt := counters(t, p, open), synRetrans(t, client)
			// One first SYN at a time: two CPUs' SYNs to one real server
			// can take the same free way (the programs claim ways
			// without a lock: the loser goes untracked, its answer a
			// handshake miss, its retransmission a new SYN), which
			// this test is not about. Each connect starts once the
			// previous one's SYN was counted.
			var wg sync.WaitGroup
			for i, port := range lost {
				wg.Go(func() {
					if c, err := sampleDial(client, from(port), open, 1500*time.Millisecond); err == nil {
						c.Close()
						t.Errorf("port %d: a black hole answered", port)
					}
				})
				waitSYNs(t, p, open, before.SYNs+uint64(i)+1)
			}
			wg.Wait()
			retrans := synRetrans(t, client) - rt
			got = counters(t, p, open).sub(before)
			if retrans < uint64(len(lost)) {
				t.Logf("client retransmitted %d SYNs of %d connections (a slow machine)", retrans, len(lost))
			}
			if retrans == 0 || got.SYNRetransmits != retrans || got.SYNs != uint64(len(lost))+retrans {
				t.Errorf("unanswered: %+v; want the client's %d retransmissions of %d SYNs", got, retrans, len(lost))
			}
			_, v := hsEntry(t, p, open)
			marked := 0
			for _, h := range v.Hs {
				if h.Tag&2 != 0 {
					marked++
				}
			}
			if marked != len(lost) && retrans >= uint64(len(lost)) {
				t.Errorf("%d ways marked retransmitted, want %d: %+v", marked, len(lost), v.Hs)
			}
		})
	}
}

// waitSYNs waits until the programs counted at least n SYNs to rs, for
// at most 5 s.
func waitSYNs(t *testing.T, p *Passive, rs netip.AddrPort, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for counters(t, p, rs).SYNs < n {
		if time.Now().After(deadline) {
			t.Fatalf("%v: fewer than %d SYNs counted after 5 s", rs, n)
		}
		time.Sleep(time.Millisecond)
	}
}
