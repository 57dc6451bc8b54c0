package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCheck(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	code := run(context.Background(), e, append([]string{"check"}, args...))
	return code, out.String(), errb.String()
}

func writeConf(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const checkValid = `virtual_server 198.18.0.1 80 {
   delay_loop 2.5
   lb_algo rr
   lb_kind NAT
   protocol TCP
   foo_bar
   real_server 198.18.1.1 80 {
      TCP_CHECK {
         connect_timeout 0.25
      }
   }
}
`

func TestCheckCommand(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"valid", checkValid, nil, 0, "valid: 1 virtual servers, 1 real servers", ":6: warning: unknown keyword 'foo_bar'"},
		{"invalid", strings.Replace(checkValid, "delay_loop 2.5", "delay_loop x", 1), nil, 1, "", ":2: delay_loop: invalid number 'x'"},
		{"config id", strings.Replace(checkValid, "lb_algo rr", "@b lb_algo bogus", 1), []string{"--config-id", "b"}, 1, "", ":3: invalid lvs_scheduler 'bogus'"},
		{"bad flag", checkValid, []string{"--nope"}, 2, "", "usage: lvsprobe check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConf(t, tt.src)
			code, stdout, stderr := runCheck(t, append([]string{"-f", p}, tt.args...)...)
			if code != tt.code || !strings.Contains(stdout, tt.inStdout) || !strings.Contains(stderr, tt.inStderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		code, _, stderr := runCheck(t, "-f", filepath.Join(t.TempDir(), "none.conf"))
		if code != 1 || !strings.Contains(stderr, "none.conf: cannot read: no such file or directory") {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
	})
}

func TestCheckDump(t *testing.T) {
	code, stdout, stderr := runCheck(t, "-f", writeConf(t, checkValid), "--dump")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		VirtualServers []struct {
			ID          string  `json:"id"`
			DelayLoop   float64 `json:"delay_loop"`
			RealServers []struct {
				Weight   int `json:"weight"`
				Checkers []struct {
					Type           string  `json:"type"`
					ConnectTimeout float64 `json:"connect_timeout"`
					DelayLoop      float64 `json:"delay_loop"`
					Retry          int     `json:"retry"`
					ConnectPort    int     `json:"connect_port"`
				} `json:"checkers"`
			} `json:"real_servers"`
		} `json:"virtual_servers"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("dump is not JSON: %v\n%s", err, stdout)
	}
	vs := got.VirtualServers[0]
	c := vs.RealServers[0].Checkers[0]
	if vs.ID != "TCP 198.18.0.1:80" || vs.DelayLoop != 2.5 || vs.RealServers[0].Weight != 1 ||
		c.Type != "TCP_CHECK" || c.ConnectTimeout != 0.25 || c.DelayLoop != 2.5 || c.Retry != 1 || c.ConnectPort != 80 {
		t.Errorf("dump: %+v", got)
	}
	if len(got.Warnings) != 1 {
		t.Errorf("warnings: %v", got.Warnings)
	}
}
