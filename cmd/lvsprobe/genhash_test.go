package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/prober"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// runCmd runs lvsprobe with args and returns its exit code and output.
func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	code := run(context.Background(), e, args)
	return code, out.String(), errb.String()
}

// TestGenhashNginx: the digest genhash prints for a file nginx serves is
// md5sum's, makes HTTP_GET and SSL_GET pass, and is what keepalived's own
// genhash prints.
func TestGenhashNginx(t *testing.T) {
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	file := make([]byte, 300<<10)
	if _, err := rand.Read(file); err != nil {
		t.Fatal(err)
	}
	ng := rs.StartNginx(t, testnet.NginxOptions{
		Files:   map[string][]byte{"/img/photo.jpg": file},
		TLSPort: 443, ServerNames: []string{"www.example.test"},
	})
	out, err := exec.Command(testenv.RequireProgram(t, "md5sum"), filepath.Join(ng.Root, "img", "photo.jpg")).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))[0]
	server := rs.Addr.String()

	tests := []struct {
		name string
		args []string
	}{
		{"http", []string{"-s", server, "-u", "/img/photo.jpg"}},
		{"http long flags", []string{"--server", server, "--port", "80", "--url", "/img/photo.jpg", "--protocol", "1.1", "--timeout", "2"}},
		{"keepalived's -P and -m", []string{"-s", server, "-u", "/img/photo.jpg", "-P", "1.0C", "-m", "7"}},
		{"ssl with SNI", []string{"-s", server, "-S", "-I", "www.example.test", "-V", "www.example.test", "-u", "/img/photo.jpg", "-r", "1.0C"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(append([]string{"genhash"}, tt.args...)...)
			if code != 0 || stdout != "digest "+want+"\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want digest %s", code, stdout, stderr, want)
			}
		})
	}
	t.Run("HTTP_GET passes with it", func(t *testing.T) {
		c := &config.Checker{Type: config.HTTPGet, ConnectIP: rs.Addr, ConnectPort: 80, ConnectTimeout: time.Second,
			HTTP: &config.HTTPOptions{URLs: []*config.URL{{Path: "/img/photo.jpg", Digest: want}}}}
		ck, err := prober.NewChecker(c, prober.CheckerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res := ck.Check(context.Background()); !res.OK {
			t.Fatal(res.Message)
		}
	})
	t.Run("verbose", func(t *testing.T) {
		code, _, stderr := runCmd("genhash", "-v", "-s", server, "-u", "/img/photo.jpg")
		for _, s := range []string{"> GET /img/photo.jpg HTTP/1.0", "> Host: " + server + ":80", "< HTTP/1.1 200 OK", "body: 307200 bytes"} {
			if code != 0 || !strings.Contains(stderr, s) {
				t.Fatalf("exit %d, stderr %q lacks %q", code, stderr, s)
			}
		}
	})
	t.Run("keepalived genhash agrees", func(t *testing.T) {
		bin := testenv.RequireProgram(t, "genhash")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-s", server, "-p", "80", "-u", "/img/photo.jpg").CombinedOutput()
		if err != nil {
			t.Fatalf("keepalived genhash: %v: %s", err, out)
		}
		m := regexp.MustCompile(`(?i)\b([0-9a-f]{32})\b`).FindSubmatch(out)
		if m == nil || string(m[1]) != want {
			t.Fatalf("keepalived genhash printed %q, want %s", out, want)
		}
	})
	t.Run("status warning", func(t *testing.T) {
		code, stdout, stderr := runCmd("genhash", "-s", server, "-u", "/status500")
		if code != 0 || !strings.HasPrefix(stdout, "digest ") || !strings.Contains(stderr, "warning: status 500") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("refused", func(t *testing.T) {
		code, _, stderr := runCmd("genhash", "-s", server, "-p", "81", "-t", "1")
		if code != 1 || !strings.Contains(stderr, "connection refused") {
			t.Fatalf("exit %d, stderr %q, want 1 and a refusal", code, stderr)
		}
	})
}

func TestGenhashUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no server", nil, 2},
		{"hostname", []string{"-s", "www.example.test"}, 2},
		{"bad port", []string{"-s", "127.0.0.1", "-p", "70000"}, 2},
		{"bad timeout", []string{"-s", "127.0.0.1", "-t", "0"}, 2},
		{"stray argument", []string{"-s", "127.0.0.1", "extra"}, 2},
		{"bad protocol", []string{"-s", "127.0.0.1", "-r", "2"}, 1},
		{"help", []string{"-h"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, stderr := runCmd(append([]string{"genhash"}, tt.args...)...); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
		})
	}
}

// TestGenhashChunkedAsKeepalived: keepalived digests a chunked body with
// its chunk framing; lvsprobe's genhash (and HTTP_GET) must print the same
// digest, or digest lines made with keepalived's genhash would fail.
func TestGenhashChunkedAsKeepalived(t *testing.T) {
	bin := testenv.RequireProgram(t, "genhash")
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	l := rs.Listen(t, "tcp", rs.Addr.String()+":8080")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-s", rs.Addr.String(), "-p", "8080", "-u", "/").CombinedOutput()
	if err != nil {
		t.Fatalf("keepalived genhash: %v: %s", err, out)
	}
	m := regexp.MustCompile(`\b[0-9a-f]{32}\b`).Find(out)
	code, stdout, stderr := runCmd("genhash", "-s", rs.Addr.String(), "-p", "8080")
	if m == nil || code != 0 || stdout != "digest "+string(m)+"\n" {
		t.Fatalf("keepalived genhash %q; lvsprobe genhash exit %d %q %q", out, code, stdout, stderr)
	}
}
