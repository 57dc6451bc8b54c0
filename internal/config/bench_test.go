package config

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// The size reported in keepalived issue #2318.
const (
	largeVS = 2300
	largeRS = 37000
)

var largeOut = flag.String("large-out", "", "write the generated large configuration to this file (TestWriteLargeConfig)")

// writeLargeConfig writes a configuration of largeVS virtual servers with
// largeRS real servers in total, alternating HTTP_GET and TCP_CHECK, all
// addresses in 198.18.0.0/15.
func writeLargeConfig(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "global_defs {\n   router_id LARGE\n}")
	rs := 0
	for v := 0; v < largeVS; v++ {
		n := largeRS / largeVS
		if v < largeRS%largeVS {
			n++
		}
		fmt.Fprintf(bw, "virtual_server 198.18.%d.%d 80 {\n   delay_loop 6\n   lb_algo wrr\n   lb_kind DR\n   protocol TCP\n", v/250, v%250+1)
		for i := 0; i < n; i++ {
			a := 0x10000 + rs // 198.19.x.y
			fmt.Fprintf(bw, "   real_server 198.%d.%d.%d 80 {\n      weight %d\n", 18+a>>16, a>>8&0xff, a&0xff, 1+i%10)
			if rs%2 == 0 {
				fmt.Fprint(bw, "      HTTP_GET {\n         url {\n            path /health\n            status_code 200\n         }\n         connect_timeout 3\n         retry 2\n         delay_before_retry 1.5\n      }\n")
			} else {
				fmt.Fprint(bw, "      TCP_CHECK {\n         connect_timeout 2\n      }\n")
			}
			fmt.Fprint(bw, "   }\n")
			rs++
		}
		fmt.Fprint(bw, "}\n")
	}
	return bw.Flush()
}

// BenchmarkLoadLarge parses the keepalived issue #2318 size: 2,300 virtual
// servers, 37,000 real servers. The goal is ≤ 1 s and ≤ 200 MiB.
func BenchmarkLoadLarge(b *testing.B) {
	var buf bytes.Buffer
	if err := writeLargeConfig(&buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		cfg, err := Parse("large.conf", data, LoadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(cfg.VirtualServers) != largeVS {
			b.Fatalf("got %d virtual servers", len(cfg.VirtualServers))
		}
	}
	b.StopTimer()
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
}

// TestLargeConfig checks the generated configuration resolves completely,
// and writes it to -large-out when given (for measuring `lvsprobe check`).
func TestLargeConfig(t *testing.T) {
	testenv.RequireLong(t)
	var buf bytes.Buffer
	if err := writeLargeConfig(&buf); err != nil {
		t.Fatal(err)
	}
	if *largeOut != "" {
		if err := os.WriteFile(*largeOut, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := Parse("large.conf", buf.Bytes(), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, vs := range cfg.VirtualServers {
		n += len(vs.RealServers)
	}
	if len(cfg.VirtualServers) != largeVS || n != largeRS || len(cfg.Warnings) != 0 {
		t.Fatalf("got %d virtual servers, %d real servers, warnings %v", len(cfg.VirtualServers), n, cfg.Warnings[:min(3, len(cfg.Warnings))])
	}
}

// vmHWM returns the process's peak resident set size in bytes, or 0.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
