package prober

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

func TestSSLGetSNI(t *testing.T) {
	tests := []struct {
		name                string
		enable              bool
		sniName, vhost, url string
		want                string
	}{
		{"off", false, "", "www.example.test", "", ""},
		{"vhost", true, "", "www.example.test", "", "www.example.test"},
		{"url vhost", true, "", "www.example.test", "url.example.test", "url.example.test"},
		{"sni_name", true, "sni.example.test", "www.example.test", "", "sni.example.test"},
		{"no name", true, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := tlsServerConfig(t, "www.example.test")
			s := serveRaw(t, listenLoopback(t), cfg, reply(ok200("secure")))
			c := checkerFor(config.SSLGet, s.addr, 2*time.Second, &config.URL{Path: "/", Digest: md5hex("secure"), VirtualHost: tt.url})
			c.HTTP.EnableSNI, c.HTTP.SNIName, c.HTTP.VirtualHost = tt.enable, tt.sniName, tt.vhost
			res := mustChecker(t, c, CheckerOptions{}).Check(context.Background())
			if !res.OK {
				t.Fatalf("check failed: %s", res.Message)
			}
			if got := <-s.snis; got != tt.want {
				t.Fatalf("SNI %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSSLGetVerification(t *testing.T) {
	serverCfg, caFile := tlsServerConfig(t, "www.example.test")
	_, otherCA := tlsServerConfig(t, "www.example.test")
	clientCA := newTestCA(t)
	clientCert := clientCA.Issue(t, "director.example.test")
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	mtls := serverCfg.Clone()
	mtls.ClientAuth, mtls.ClientCAs = tls.RequireAndVerifyClientCert, pool

	tests := []struct {
		name    string
		server  *tls.Config
		ssl     config.SSLDefs
		ok      bool
		message string
	}{
		{"no CA, not verified", serverCfg, config.SSLDefs{}, true, "ok"},
		{"right CA", serverCfg, config.SSLDefs{CAFile: caFile}, true, "ok"},
		{"wrong CA", serverCfg, config.SSLDefs{CAFile: otherCA}, false, "verify server certificate"},
		{"client cert missing", mtls, config.SSLDefs{}, false, "certificate required"},
		{"client cert", mtls, config.SSLDefs{CertFile: clientCert.CertFile, KeyFile: clientCert.KeyFile}, true, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serveRaw(t, listenLoopback(t), tt.server, reply(ok200("x")))
			c := checkerFor(config.SSLGet, s.addr, 2*time.Second, &config.URL{Path: "/"})
			c.HTTP.EnableSNI, c.HTTP.VirtualHost = true, "www.example.test"
			res := mustChecker(t, c, CheckerOptions{SSL: tt.ssl}).Check(context.Background())
			if res.OK != tt.ok || !strings.Contains(res.Message, tt.message) {
				t.Fatalf("OK=%v %q, want OK=%v containing %q", res.OK, res.Message, tt.ok, tt.message)
			}
		})
	}
}

func TestSSLGetTLSCompliant(t *testing.T) {
	resp := "HTTP/1.0 200 OK\r\n\r\nto the close"
	cut := func(c net.Conn) { // no close_notify: the TCP connection just ends
		_, _ = c.Write([]byte(resp))
		_ = c.(*tls.Conn).NetConn().Close()
	}
	tests := []struct {
		name      string
		serve     func(net.Conn)
		compliant bool
		ok        bool
	}{
		{"close_notify, compliant", reply(resp), true, true},
		{"cut, compliant", cut, true, false},
		{"cut, lenient", cut, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := tlsServerConfig(t, "www.example.test")
			s := serveRaw(t, listenLoopback(t), cfg, tt.serve)
			c := checkerFor(config.SSLGet, s.addr, 2*time.Second, &config.URL{Path: "/", Digest: md5hex("to the close")})
			c.HTTP.TLSCompliant = tt.compliant
			res := mustChecker(t, c, CheckerOptions{}).Check(context.Background())
			if res.OK != tt.ok {
				t.Fatalf("OK=%v %q, want %v", res.OK, res.Message, tt.ok)
			}
		})
	}
}

func TestSSLGetHandshakeFailure(t *testing.T) {
	s := serveRaw(t, listenLoopback(t), nil, reply(ok200("plain")))
	ck := mustChecker(t, checkerFor(config.SSLGet, s.addr, 2*time.Second, &config.URL{Path: "/"}), CheckerOptions{})
	res := ck.Check(context.Background())
	if res.OK || !strings.Contains(res.Message, "TLS handshake") {
		t.Fatalf("OK=%v %q, want a handshake failure", res.OK, res.Message)
	}
}

// TestSSLGetResumption: without a CA the checker resumes its TLS session
// (a quarter less CPU per check); with a CA every check does the full
// handshake and sees the chain again.
func TestSSLGetResumption(t *testing.T) {
	cfg, caFile := tlsServerConfig(t, "www.example.test")
	s := serveRaw(t, listenLoopback(t), cfg, func(c net.Conn) {
		resumed := "resumed=false"
		if c.(*tls.Conn).ConnectionState().DidResume {
			resumed = "resumed=true"
		}
		_, _ = c.Write([]byte(ok200(resumed)))
	})
	for _, tt := range []struct {
		name   string
		ssl    config.SSLDefs
		second bool // the second check resumes
	}{
		{"not verified", config.SSLDefs{}, true},
		{"verified", config.SSLDefs{CAFile: caFile}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := checkerFor(config.SSLGet, s.addr, 2*time.Second, &config.URL{Path: "/", Regex: "resumed=true"})
			c.HTTP.EnableSNI, c.HTTP.VirtualHost = true, "www.example.test"
			ck := mustChecker(t, c, CheckerOptions{SSL: tt.ssl})
			if res := ck.Check(context.Background()); res.OK || !strings.Contains(res.Message, "did not match") {
				t.Fatalf("first check: OK=%v %q, want a full handshake", res.OK, res.Message)
			}
			if res := ck.Check(context.Background()); res.OK != tt.second {
				t.Fatalf("second check: OK=%v %q, want resumed=%v", res.OK, res.Message, tt.second)
			}
		})
	}
}
