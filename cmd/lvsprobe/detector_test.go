package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// detConf has one TCP real server at ADDR:8080 with keepalived's slow
// default ladder: delay_loop 30, three retries 5 s apart.
const detConf = `virtual_server 198.18.250.1 80 {
    delay_loop 30
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server ADDR 8080 {
        TCP_CHECK {
            connect_timeout 3
            retry 3
            delay_before_retry 5
            warmup 0
        }
    }
}
`

// TestRunDetector runs `lvsprobe run` with SYN probes and the detector
// against a real server in a namespace, kills its process and restarts
// it: the real server must leave (dry-run ipvsadm) long before
// delay_loop, with the RST as evidence and the ladder cut, and come back
// on its SYN-ACK.
func TestRunDetector(t *testing.T) {
	testenv.RequireRoot(t)
	if !testnet.Inside() {
		testenv.SkipOrFail(t, "needs the test network namespace")
	}
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	l := rs.Listen(t, "tcp", ":8080")
	go acceptAndReset(l)
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(detConf, "ADDR", rs.Addr.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	p := runInProcess(t, slog.LevelInfo, 60*time.Second, "-f", path, "--ipvs=dry-run", "--syn-probe-interval=20ms",
		"--metrics-listen=", "--control-socket=")
	must := p.must
	must(`msg="failure detector on"`, "mode=fast") // before the SYN prober loads
	on := must(`msg="SYN probes on"`)
	if !strings.Contains(on, "receiver=ebpf") {
		testenv.SkipOrFail(t, "eBPF receiver not available: "+on)
	}
	must(`msg="real server up"`)

	killed := time.Now()
	_ = l.Close()
	down := must(`msg="real server down"`)
	took := time.Since(killed)
	t.Logf("down after %v: %s", took, down)
	for _, want := range []string{"first_signal=rst", "ladder_cut_by=", "since_first_signal="} {
		if !strings.Contains(down, want) {
			t.Errorf("down line lacks %q: %s", want, down)
		}
	}
	if took > 10*time.Second {
		t.Errorf("down %v after the kill; keepalived's ladder alone is 15 s, delay_loop 30 s", took)
	}

	restarted := time.Now()
	go acceptAndReset(rs.Listen(t, "tcp", ":8080"))
	up := must(`msg="real server up"`)
	t.Logf("up after %v: %s", time.Since(restarted), up)
	if !strings.Contains(up, "first_signal=synack") {
		t.Errorf("up line lacks the SYN-ACK as first signal: %s", up)
	}
	if took := time.Since(restarted); took > 10*time.Second {
		t.Errorf("up %v after the restart, delay_loop 30 s", took)
	}
	p.stop()
}
