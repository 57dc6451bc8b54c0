package synprobe

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// snmpTCP reads one counter of the Tcp: lines of a /proc/net/snmp text.
func snmpTCP(tb testing.TB, snmp, name string) uint64 {
	tb.Helper()
	return procNetCounter(tb, snmp, "Tcp:", name)
}

// directorTCP reads a Tcp counter of the test's own (the director's)
// network namespace.
func directorTCP(tb testing.TB, name string) uint64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		tb.Fatal(err)
	}
	return snmpTCP(tb, string(b), name)
}

// TestProgramSendsRST: the eBPF receiver answers the real server's
// SYN-ACKs with the RST itself, so the director's stack sends none: its
// TcpOutRsts stays still while the real server's half-open requests are
// reset (EmbryonicRsts grows, none is left in SYN_RECV once the probes
// stop, none of its segments fails the checksum). With KernelRST the
// same happens through the director's stack, whose TcpOutRsts then grows
// by at least one per SYN-ACK. Probes to a closed port still read as
// refused either way (the program drops the RST once it is recorded).
// IPv4 and IPv6. With the real server's transmit checksum offload off, its
// SYN-ACKs arrive with full checksums and it verifies the RST's in
// software (a wrong one leaves the request in SYN_RECV, retransmitting);
// with it on, they arrive CHECKSUM_PARTIAL and the RST leaves so too: a
// packet socket on the real server checks every RST's checksum, full or
// (CHECKSUM_PARTIAL) the pseudo header's sum the device would start from.
func TestProgramSendsRST(t *testing.T) {
	ethtool := testenv.RequireProgram(t, "ethtool")
	testenv.RequireProgram(t, "ss")
	for _, offload := range []string{"off", "on"} {
		for _, kernel := range []bool{false, true} {
			t.Run(fmt.Sprintf("rs_tx_csum=%s/kernel_rst=%v", offload, kernel), func(t *testing.T) {
				testProgramSendsRST(t, ethtool, offload, kernel)
			})
		}
	}
}

func testProgramSendsRST(t *testing.T, ethtool, offload string, kernel bool) {
	n := testnet.New(t, testnet.Options{RealServers: 1})
	rs := n.RealServers[0]
	v6 := addIPv6(t, rs)
	rs.Run(t, ethtool, "-K", "eth0", "tx", offload)
	rs.Listen(t, "tcp", ":8080")
	wants := map[netip.AddrPort]want{
		netip.AddrPortFrom(rs.Addr, 8080): {kind: SynAck},
		netip.AddrPortFrom(v6, 8080):      {kind: SynAck},
		netip.AddrPortFrom(rs.Addr, 9090): {kind: Reset},
		netip.AddrPortFrom(v6, 9090):      {kind: Reset},
	}
	p, reg := newTestProber(t, n, Config{Interval: 20 * time.Millisecond, Receiver: ReceiverEBPF, PortLo: 62000, PortHi: 62999, KernelRST: kernel})
	for target := range wants {
		if err := p.Add(target, 0); err != nil {
			t.Fatal(err)
		}
	}
	capture := captureRSTs(t, rs, 62000, 62999)
	snmp := func() string { return rs.Run(t, "cat", "/proc/net/snmp") }
	outRsts0 := directorTCP(t, "OutRsts")
	embryonic0 := tcpExt(t, rs, "EmbryonicRsts")
	csumErrs0 := snmpTCP(t, snmp(), "InCsumErrors")
	retrans0 := tcpExt(t, rs, "TCPSynRetrans")

	stop := start(t, p)
	waitSignals(t, p, wants)
	// A few more rounds, then no more probes.
	waitSignals(t, p, wants)
	stop()

	// The last RSTs were sent when the last answers came in: the real
	// server has processed them within moments, far less than its
	// first SYN-ACK retransmission (1 s), which a RST it dropped would
	// leave waiting in SYN_RECV.
	deadline := time.Now().Add(500 * time.Millisecond)
	var left string
	for {
		left = strings.TrimSpace(rs.Run(t, "ss", "-Htn", "state", "syn-recv"))
		if left == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the real server's table; no event to wait for
	}
	if left != "" {
		t.Errorf("half-open connections left on the real server 500 ms after the last probe:\n%s", left)
	}

	capture.stop()
	seen, partial, bad := capture.counts()
	if seen[4] == 0 || seen[6] == 0 || bad != 0 {
		t.Errorf("real server captured RSTs %v (IPv4, IPv6), %d with a wrong checksum; want some of each, none wrong", seen, bad)
	}
	// A SYN-ACK left to offload becomes a RST left to offload, whose
	// field must hold the pseudo header's sum for the device to finish.
	if offload == "on" && !kernel && partial == 0 {
		t.Errorf("no captured RST left its checksum to offload (of %v): the CHECKSUM_PARTIAL path went untested", seen)
	}
	t.Logf("captured RSTs %v, %d of them CHECKSUM_PARTIAL", seen, partial)

	synacks := testutil.ToFloat64(p.m.answers.WithLabelValues("synack"))
	resets := testutil.ToFloat64(p.m.answers.WithLabelValues("rst"))
	if synacks < 4 || resets < 4 {
		t.Fatalf("answers: %v SYN-ACKs, %v RSTs; want at least 4 of each", synacks, resets)
	}
	if d := tcpExt(t, rs, "EmbryonicRsts") - embryonic0; float64(d) < synacks {
		t.Errorf("real server reset %d requests, want >= %v (one per SYN-ACK)", d, synacks)
	}
	if d := snmpTCP(t, snmp(), "InCsumErrors") - csumErrs0; d != 0 {
		t.Errorf("real server counted %d TCP checksum errors", d)
	}
	if d := tcpExt(t, rs, "TCPSynRetrans") - retrans0; d != 0 {
		t.Errorf("real server retransmitted %d SYN-ACKs", d)
	}
	out := directorTCP(t, "OutRsts") - outRsts0
	st, err := p.recv.(*ebpfReceiver).sp.Stats()
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for action, want := range map[string]uint64{"sent": st.RSTSent, "dropped": st.RSTDropped, "stack": st.RSTKernel, "broken": st.RSTBroken} {
		if got := counter(mfs, "lvsprobe_synprobe_receiver_rsts_total", action); got < float64(want) {
			t.Errorf("receiver_rsts_total{action=%q} = %v, want >= %d (the program's counter)", action, got, want)
		}
	}
	if kernel {
		if float64(out) < synacks || st.RSTSent != 0 || st.RSTDropped != 0 {
			t.Errorf("director's stack sent %d RSTs for %v SYN-ACKs (want one each), program %+v (want none sent or dropped)", out, synacks, st)
		}
		return
	}
	if out != 0 {
		t.Errorf("director's stack sent %d RSTs; want none, the program answers", out)
	}
	if float64(st.RSTSent) < synacks || float64(st.RSTDropped) < resets || st.RSTKernel != 0 || st.RSTBroken != 0 {
		t.Errorf("program stats %+v for %v SYN-ACKs and %v RSTs: want one RST sent per SYN-ACK, each RST dropped", st, synacks, resets)
	}
}
