package prober

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// TestCheckersFromConfig parses a keepalived.conf (which keepalived itself
// accepts) and runs the checkers it describes: the virtualhost chain
// (url → checker → real server → virtual server), http_protocol, the
// status_code list and the digest all reach the wire and the verdict.
func TestCheckersFromConfig(t *testing.T) {
	body := "ok from config\n"
	s := serveRaw(t, listenLoopback(t), nil, func(c net.Conn) {
		_, _ = c.Write([]byte("HTTP/1.1 203 Non-Authoritative\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body))
	})
	conf := fmt.Sprintf(`virtual_server 198.18.250.1 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    virtualhost vs.example.test
    real_server %[1]s %[2]d {
        HTTP_GET {
            http_protocol 1.1
            connect_timeout 2
            url {
                path /first
                digest %[3]s
                status_code 200 203
            }
            url {
                path /second
                virtualhost url.example.test
                status_code 200-299
            }
        }
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`, s.addr.Addr(), s.addr.Port(), md5hex(body))
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(testenv.RequireProgram(t, "keepalived"), "-t", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("keepalived -t rejects the test's own config: %v: %s", err, out)
	}
	cfg, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cks := cfg.VirtualServers[0].RealServers[0].Checkers
	if len(cks) != 2 {
		t.Fatalf("%d checkers, want 2", len(cks))
	}
	for _, c := range cks {
		ck := mustChecker(t, c, CheckerOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res := ck.Check(ctx)
		cancel()
		if !res.OK {
			t.Fatalf("%s: %s", ck, res.Message)
		}
	}
	first, second := <-s.reqs, <-s.reqs
	for req, want := range map[string]string{
		first:  "GET /first HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nHost: vs.example.test\r\nConnection: close\r\n\r\n",
		second: "GET /second HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nHost: url.example.test\r\nConnection: close\r\n\r\n",
	} {
		if req != want {
			t.Errorf("request %q, want %q", req, want)
		}
	}
	if !strings.Contains(cks[0].Pos.String(), "keepalived.conf:") {
		t.Errorf("checker position %v does not name the file", cks[0].Pos)
	}
}
