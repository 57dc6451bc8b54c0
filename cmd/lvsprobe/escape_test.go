package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// hostileAnswers are what the hostile real server sends on each port:
// terminal escapes (CSI, OSC with BEL, the one-byte C1 CSI), NULs, a
// carriage return and a line feed that would start a forged log record,
// in the places a check reports from (status line, status code, header
// line, SMTP banner).
var hostileAnswers = map[string]string{
	"8080": "HTTP/1.1 2\x1b[31m0\x00\r\n\r\n",
	"8081": "HTTP/1.1 200 OK\r\nX\x1b]0;pwned\x07: y\r\nbad\x00line\rlevel=ERROR msg=forged\r\n\r\n",
	"8082": "HTTP/1.1 20x\u009b2J\rlevel=ERROR msg=forged\nlevel=ERROR msg=forged2\r\n\r\n",
	"25":   "554 \x1b[2J\x00go away\u009b31m\rlevel=ERROR msg=forged\r\n",
}

const hostileConf = `virtual_server 198.18.250.1 80 {
    delay_loop 1
    lb_kind NAT
    protocol TCP
    real_server ADDR 8080 {
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
            retry 0
        }
    }
    real_server ADDR 8081 {
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
            retry 0
        }
    }
    real_server ADDR 8082 {
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
            retry 0
        }
    }
    real_server ADDR 25 {
        SMTP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}
`

// serveHostile answers every connection on l with answer once the
// client has sent something, then closes it.
func serveHostile(l net.Listener, answer string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if !strings.HasPrefix(answer, "554") { // SMTP speaks first
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
			_, _ = io.WriteString(c, answer)
		}()
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// unsafeRune reports a rune a terminal or a line-based log reader acts
// on: C0 and C1 controls and DEL (the record's final line feed is
// checked apart), and invalid UTF-8.
func unsafeRune(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r)
}

// TestHostileBytesEscaped runs `lvsprobe run` against a real server (in
// its own network namespace) that answers HTTP_GET and SMTP_CHECK with
// terminal escapes, NULs, carriage returns and line feeds, and logs
// through slog's text and JSON handlers at once: every record is one
// line with no control character in it, the reasons still carry the
// server's bytes (escaped), no forged record appears, and `lvsprobe
// status` prints the reasons without control characters.
func TestHostileBytesEscaped(t *testing.T) {
	n := testnet.New(t, testnet.Options{})
	rs := n.RealServers[0]
	for port, answer := range hostileAnswers {
		go serveHostile(rs.Listen(t, "tcp", ":"+port), answer)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(hostileConf, "ADDR", rs.Addr.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	var text, js syncBuffer
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	e := &env{stdout: io.Discard, stderr: io.Discard,
		log: slog.New(slog.NewMultiHandler(slog.NewTextHandler(&text, opts), slog.NewJSONHandler(&js, opts)))}
	sock := filepath.Join(dir, "lvsprobe.sock")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, e, []string{"run", "-f", path, "--ipvs=dry-run", "--syn-probe=false", "--passive=off",
			"--metrics-listen=", "--control-socket=" + sock})
	}()
	// Every real server down, by the JSON records' reasons.
	downs := func() map[string]string {
		out := map[string]string{}
		for l := range strings.SplitSeq(js.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) != nil || rec["msg"] != "real server down" {
				continue
			}
			k, _ := rec["real_server"].(string)
			out[k], _ = rec["reason"].(string)
		}
		return out
	}
	waitFor(t, 30*time.Second, "all four real servers down", func() (bool, string) {
		select {
		case c := <-code:
			t.Fatalf("run exited %d", c)
		default:
		}
		d := downs()
		return len(d) == 4, fmt.Sprint(d)
	})
	for k, reason := range downs() {
		t.Logf("%s down: %s", k, reason)
		// The server's bytes reach the reason, escaped by the checker
		// (%q) — they are not dropped on the way.
		if !strings.Contains(reason, `\x1b`) && !strings.Contains(reason, `\u009b`) && !strings.Contains(reason, `\r`) {
			t.Errorf("%s: reason %q shows nothing of the hostile answer", k, reason)
		}
		for _, r := range reason {
			if unsafeRune(r) {
				t.Errorf("%s: reason %q holds control character %U", k, reason, r)
			}
		}
	}
	resp, err := controlRequest(ctx, sock, "GET", "/status")
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeStatus(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := renderStatus(&table, st); err != nil {
		t.Fatal(err)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("run exited %d", c)
	}

	for name, out := range map[string]string{"text": text.String(), "json": js.String(), "status": table.String()} {
		if !strings.HasSuffix(out, "\n") {
			t.Errorf("%s output does not end a line", name)
		}
		for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			for _, r := range l {
				if unsafeRune(r) && r != '\t' {
					t.Errorf("%s line %d holds %U: %q", name, i+1, r, l)
					break
				}
			}
			if strings.Contains(l, "forged") && (strings.HasPrefix(l, "level=ERROR msg=forged") || strings.HasPrefix(l, `{"level":"ERROR","msg":"forged`)) {
				t.Errorf("%s line %d is a forged record: %q", name, i+1, l)
			}
			if name == "json" && !json.Valid([]byte(l)) {
				t.Errorf("json line %d is not one JSON record: %q", i+1, l)
			}
			if name == "text" && !strings.HasPrefix(l, "time=") {
				t.Errorf("text line %d is not a record of its own: %q", i+1, l)
			}
		}
	}
	if t.Failed() {
		t.Logf("text log:\n%s\nstatus:\n%s", text.String(), table.String())
	}
}
