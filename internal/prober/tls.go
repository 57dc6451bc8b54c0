package prober

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// newTLSConfig builds the client side of SSL_GET from the global SSL
// block. Like keepalived, it does not verify the server's certificate
// unless a CA is configured; then the chain must lead to that CA (and,
// when SNI is sent, name the SNI host). The client certificate, when
// configured, is offered to servers that ask. Encrypted keys (password)
// are not supported. Sessions are resumed when nothing is verified.
func newTLSConfig(ssl config.SSLDefs) (*tls.Config, error) {
	cfg := &tls.Config{
		InsecureSkipVerify: true, // verification, when configured, is done by VerifyConnection
		MinVersion:         tls.VersionTLS10,
	}
	if ssl.CertFile != "" {
		key := ssl.KeyFile
		if key == "" {
			key = ssl.CertFile
		}
		cert, err := tls.LoadX509KeyPair(ssl.CertFile, key)
		if err != nil {
			return nil, fmt.Errorf("load SSL certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if ssl.CAFile != "" {
		pem, err := os.ReadFile(ssl.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read SSL ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("SSL ca %s: no PEM certificate: %w", ssl.CAFile, errConfig)
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyChain(cs, pool)
		}
	} else {
		// Without verification nothing is lost by resuming the session,
		// which spares a quarter of the check's CPU (and more of the real
		// server's). With a CA every check sees the full chain again.
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	}
	return cfg, nil
}

// verifyChain verifies the server's chain against roots, and the SNI name
// when one was sent.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       cs.ServerName,
	})
	if err != nil {
		return fmt.Errorf("verify server certificate: %w", err)
	}
	return nil
}

// eofConn remembers whether the peer closed the TCP connection, to tell a
// TLS stream ended by close_notify from one merely cut off.
type eofConn struct {
	net.Conn
	eof bool
}

func (c *eofConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, io.EOF) {
		c.eof = true
	}
	return n, err
}

// errNoCloseNotify reports a TLS body that ended without close_notify
// under tls_compliant.
var errNoCloseNotify = errors.New("TLS stream ended without close_notify")
