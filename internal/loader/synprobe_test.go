package loader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// mustLoad loads the receiver or skips where BPF is unavailable.
func mustLoad(tb testing.TB, d Delivery) *SynProbe {
	tb.Helper()
	return mustLoadOpts(tb, SynProbeOptions{PortLo: 40000, PortHi: 40999, Delivery: d})
}

// mustLoadOpts loads the receiver with opts or skips where BPF is
// unavailable.
func mustLoadOpts(tb testing.TB, opts SynProbeOptions) *SynProbe {
	tb.Helper()
	testenv.RequireRoot(tb)
	s, err := LoadSynProbe(opts)
	if errors.Is(err, ErrNotSupported) {
		testenv.SkipOrFail(tb, "eBPF not available: "+err.Error())
	}
	if err != nil {
		tb.Fatalf("load: %v\n%s", err, VerifierLog(err))
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// frame builds an Ethernet+IPv4+TCP frame from 198.18.0.2:80 to
// 198.18.0.1:dport with the given flags and ack.
func frame(dport uint16, flags byte, ack uint32) []byte {
	b := make([]byte, 14+20+20)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	ip[8] = 64
	ip[9] = 6
	copy(ip[12:], []byte{198, 18, 0, 2})
	copy(ip[16:], []byte{198, 18, 0, 1})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 80)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = flags
	return b
}

// TC verdicts as BPF_PROG_TEST_RUN returns them.
const (
	tcActShot     = 2
	tcActRedirect = 7
)

// TestFilterByPortAndFlags: only SYN-ACKs and RSTs to the reserved ports
// are handed up; by default the program answers such a SYN-ACK with its
// RST (TC_ACT_REDIRECT) and drops such a RST (TC_ACT_SHOT), since the
// test's netns delivers 198.18.0.1 locally (no forwarding); with
// KernelRST every packet goes on (TC_ACT_UNSPEC).
func TestFilterByPortAndFlags(t *testing.T) {
	tests := []struct {
		name    string
		dport   uint16
		flags   byte
		want    bool
		verdict uint32 // with the program's RST; TC_ACT_UNSPEC with KernelRST
	}{
		{"synack in range", 40000, 0x12, true, tcActRedirect},
		{"rst in range", 40999, 0x14, true, tcActShot},
		{"bare rst in range", 40500, 0x04, true, tcActShot},
		{"synack below range", 39999, 0x12, false, tcActUnspec},
		{"synack above range", 41000, 0x12, false, tcActUnspec},
		{"plain ack", 40001, 0x10, false, tcActUnspec},
		{"syn only", 40001, 0x02, false, tcActUnspec},
	}
	for _, kernel := range []bool{false, true} {
		t.Run(fmt.Sprintf("kernel_rst=%v", kernel), func(t *testing.T) {
			s := mustLoadOpts(t, SynProbeOptions{PortLo: 40000, PortHi: 40999, KernelRST: kernel})
			got := make(chan Answer, len(tests))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- s.ReadAnswers(ctx, func(a *Answer) {
					c := *a
					c.Packet = append([]byte(nil), a.Packet...)
					got <- c
				}, func(upTo uint64) {
					if upTo > Ktime() {
						t.Errorf("drained up to %d, after now", upTo)
					}
				})
			}()
			want := 0
			for _, tt := range tests {
				ret, err := s.Program().Run(&ebpf.RunOptions{Data: frame(tt.dport, tt.flags, 7), DataOut: make([]byte, 128)})
				if err != nil {
					t.Fatalf("%s: run: %v", tt.name, err)
				}
				wantRet := tt.verdict
				if kernel {
					wantRet = tcActUnspec
				}
				if ret != wantRet {
					t.Errorf("%s: returned %d, want %d", tt.name, int32(ret), int32(wantRet))
				}
				if tt.want {
					want++
				}
			}
			for range want {
				select {
				case a := <-got:
					if a.Family != 4 || a.WireLen != 40 || len(a.Packet) != 40 || a.KtimeNs == 0 {
						t.Errorf("answer = family %d wire %d cap %d ktime %d", a.Family, a.WireLen, len(a.Packet), a.KtimeNs)
					}
					if dp := binary.BigEndian.Uint16(a.Packet[22:]); dp < 40000 || dp > 40999 {
						t.Errorf("answer to port %d passed the filter", dp)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("got fewer than %d answers", want)
				}
			}
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			wantStats := Stats{Matched: uint64(want), RSTSent: 1, RSTDropped: 2}
			if kernel {
				wantStats = Stats{Matched: uint64(want)}
			}
			if st != wantStats {
				t.Errorf("stats = %+v, want %+v", st, wantStats)
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("ReadAnswers = %v, want context.Canceled", err)
			}
			select {
			case a := <-got:
				t.Errorf("unexpected extra answer %+v", a)
			default:
			}
		})
	}
}

func TestTargetMap(t *testing.T) {
	s := mustLoad(t, TargetMap)
	for _, f := range [][]byte{frame(40001, 0x12, 100), frame(40002, 0x14, 200), frame(50000, 0x14, 300)} {
		if _, err := s.Program().Run(&ebpf.RunOptions{Data: f}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ReadLast(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("entries = %+v, want 1", got)
	}
	e := got[0]
	if e.Target.String() != "198.18.0.2:80" || e.Count != 2 || e.SynAckAck != 100 || e.SynAckDport != 40001 ||
		e.RstAck != 200 || e.RstDport != 40002 || e.SynAckNs == 0 || e.RstNs < e.SynAckNs {
		t.Errorf("entry = %+v", e)
	}
}

func TestAttachTCXAndClsact(t *testing.T) {
	for _, force := range []bool{false, true} {
		s := mustLoad(t, RingBuffer)
		s.opts.ForceClsact = force
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		ns, err := netns.New()
		if err != nil {
			t.Fatal(err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = "lvsp0"
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "lvsp1"}); err != nil {
			t.Fatal(err)
		}
		l, err := netlink.LinkByName("lvsp0")
		if err != nil {
			t.Fatal(err)
		}
		how, err := s.Attach(l.Attrs().Index)
		if err != nil {
			t.Fatalf("attach (force clsact %v): %v", force, err)
		}
		want := "tcx"
		if force || !kernelAtLeast(t, 6, 6) {
			want = "clsact"
		}
		if how != want {
			t.Errorf("attached with %s, want %s", how, want)
		}
		if force {
			fs, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
			if err != nil || len(fs) != 1 {
				t.Errorf("ingress filters = %v, %v; want one", fs, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if force {
			fs, _ := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
			if len(fs) != 0 {
				t.Errorf("filters left after Close: %v", fs)
			}
		}
		netns.Set(orig)
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
	}
}

// TestKtime checks that Ktime is CLOCK_MONOTONIC, the clock of
// bpf_ktime_get_ns: the kernel's stamp on a record falls between two
// Ktime readings around the program's run.
func TestKtime(t *testing.T) {
	s := mustLoad(t, RingBuffer)
	got := make(chan uint64, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.ReadAnswers(ctx, func(a *Answer) { got <- a.KtimeNs }, nil)
	before := Ktime()
	if _, err := s.Program().Run(&ebpf.RunOptions{Data: frame(40000, 0x12, 1)}); err != nil {
		t.Fatal(err)
	}
	after := Ktime()
	select {
	case k := <-got:
		// One syscall's skew between the two clock readings at start-up.
		const slack = 1_000_000
		if k+slack < before || k > after+slack {
			t.Errorf("kernel stamp %d outside [%d, %d]", k, before, after)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no record")
	}
}

// kernelAtLeast reports whether the running kernel is major.minor or newer.
func kernelAtLeast(tb testing.TB, major, minor int) bool {
	tb.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		tb.Fatal(err)
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err != nil {
		tb.Fatalf("parse kernel release: %v", err)
	}
	return ma > major || ma == major && mi >= minor
}
