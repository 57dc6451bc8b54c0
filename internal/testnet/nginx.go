package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// NginxOptions configure a real nginx on a real server.
type NginxOptions struct {
	Files       map[string][]byte // files served, by path under the document root
	Port        uint16            // plain HTTP port; 0 means 80
	TLSPort     uint16            // HTTPS port; 0 means no TLS
	Cert        *Cert             // the HTTPS certificate; nil means one from a fresh CA for ServerNames
	ServerNames []string          // server_name, and the names of a generated certificate
	Extra       string            // extra directives inside the server block
}

// Nginx is a real nginx (/usr/sbin/nginx, Debian's build) running in the
// foreground inside a real server's namespace, with its own prefix
// directory and configuration. Every listener serves /status500 with
// status 500 besides the files.
type Nginx struct {
	Root string // the document root
	Cert *Cert  // the HTTPS certificate, when TLSPort is set

	rs   *RealServer
	bin  string
	dir  string
	conf string
	opts NginxOptions
	cmd  *exec.Cmd
	done chan error
}

// nginxReadyTimeout bounds the wait for nginx to accept connections.
const nginxReadyTimeout = 10 * time.Second

// StartNginx writes the files and the configuration into a test directory
// and starts nginx; it is stopped on cleanup. It returns once nginx
// accepts connections on every port.
func (rs *RealServer) StartNginx(tb testing.TB, opts NginxOptions) *Nginx {
	tb.Helper()
	bin := testenv.RequireProgram(tb, "nginx")
	if opts.Port == 0 {
		opts.Port = 80
	}
	dir := tb.TempDir()
	n := &Nginx{Root: filepath.Join(dir, "html"), rs: rs, bin: bin, dir: dir, conf: filepath.Join(dir, "nginx.conf"), opts: opts}
	for _, d := range []string{n.Root, filepath.Join(dir, "tmp"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatalf("testnet: %v", err)
		}
	}
	for name, data := range opts.Files {
		n.WriteFile(tb, name, data)
	}
	if opts.TLSPort != 0 {
		n.Cert = opts.Cert
		if n.Cert == nil {
			n.Cert = NewCA(tb).Issue(tb, opts.ServerNames...)
		}
	}
	if err := os.WriteFile(n.conf, []byte(n.config()), 0o644); err != nil {
		tb.Fatalf("testnet: %v", err)
	}
	tb.Cleanup(func() { n.Stop(tb) })
	n.Start(tb)
	return n
}

// config renders nginx.conf.
func (n *Nginx) config() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("daemon off;")
	p("master_process off;")
	p("worker_processes 1;")
	p("pid %s;", filepath.Join(n.dir, "nginx.pid"))
	p("error_log %s notice;", filepath.Join(n.dir, "logs", "error.log"))
	p("events { worker_connections 1024; }")
	p("http {")
	p("  access_log off;")
	p("  default_type application/octet-stream;")
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		p("  %s_temp_path %s;", t, filepath.Join(n.dir, "tmp", t))
	}
	p("  server {")
	p("    listen %d;", n.opts.Port)
	if n.opts.TLSPort != 0 {
		p("    listen %d ssl;", n.opts.TLSPort)
		p("    ssl_certificate %s;", n.Cert.CertFile)
		p("    ssl_certificate_key %s;", n.Cert.KeyFile)
	}
	if len(n.opts.ServerNames) > 0 {
		p("    server_name %s;", strings.Join(n.opts.ServerNames, " "))
	}
	p("    root %s;", n.Root)
	p("    location = /status500 { return 500; }")
	if n.opts.Extra != "" {
		p("    %s", n.opts.Extra)
	}
	p("  }")
	p("}")
	return b.String()
}

// WriteFile writes (or replaces) a file under the document root.
func (n *Nginx) WriteFile(tb testing.TB, name string, data []byte) {
	tb.Helper()
	p := filepath.Join(n.Root, filepath.FromSlash(strings.TrimPrefix(name, "/")))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatalf("testnet: %v", err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatalf("testnet: %v", err)
	}
}

// Start starts nginx (again, after [Nginx.Stop]) and waits until it
// accepts connections.
func (n *Nginx) Start(tb testing.TB) {
	tb.Helper()
	if n.cmd != nil {
		tb.Fatal("testnet: nginx already running")
	}
	cmd := n.rs.Command(context.Background(), n.bin, "-p", n.dir, "-c", n.conf, "-e", filepath.Join(n.dir, "logs", "error.log"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("testnet: start nginx: %v", err)
	}
	n.cmd, n.done = cmd, make(chan error, 1)
	go func() { n.done <- cmd.Wait() }()
	ports := []uint16{n.opts.Port}
	if n.opts.TLSPort != 0 {
		ports = append(ports, n.opts.TLSPort)
	}
	for _, port := range ports {
		if err := n.waitAccepting(port); err != nil {
			n.Stop(tb)
			tb.Fatalf("testnet: nginx in %s: %v\n%s%s", n.rs.Name, err, out.String(), n.errorLog())
		}
	}
}

// waitAccepting connects to port until nginx accepts, nginx exits or the
// timeout passes. A refused connect returns at once, so each attempt is
// an event, not a guess.
func (n *Nginx) waitAccepting(port uint16) error {
	ctx, cancel := context.WithTimeout(context.Background(), nginxReadyTimeout)
	defer cancel()
	addr := netip.AddrPortFrom(n.rs.Addr, port).String()
	backoff := time.Millisecond
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetLinger(0) // a RST: no TIME_WAIT left on the director
			return c.Close()
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("connect to %s: %w", addr, err)
		}
		select {
		case err := <-n.done:
			n.done <- err
			return fmt.Errorf("nginx exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("nginx not accepting on %s after %v", addr, nginxReadyTimeout)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// Stop stops nginx (SIGTERM, then SIGKILL after a grace period) and waits
// for it to exit; a stopped server refuses connections with a RST.
func (n *Nginx) Stop(tb testing.TB) {
	tb.Helper()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
}

// URL returns the plain-HTTP base address of the nginx ("198.18.N.2:80").
func (n *Nginx) URL() string {
	return netip.AddrPortFrom(n.rs.Addr, n.opts.Port).String()
}

// errorLog returns nginx's error log, for failure messages.
func (n *Nginx) errorLog() string {
	b, err := os.ReadFile(filepath.Join(n.dir, "logs", "error.log"))
	if err != nil {
		return ""
	}
	return "error.log:\n" + string(b)
}

// Port returns the plain-HTTP port.
func (n *Nginx) Port() uint16 { return n.opts.Port }

// TLSPort returns the HTTPS port (0 without TLS).
func (n *Nginx) TLSPort() uint16 { return n.opts.TLSPort }
