package prober

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// httpChecker is HTTP_GET and SSL_GET: every url is fetched in turn, each
// over a fresh connection, and each must pass its status_code ranges,
// digest (MD5 of the body) and regex. connect_timeout bounds the whole
// check, all urls together, not each read: a server trickling its answer
// fails at the deadline (keepalived #1822).
type httpChecker struct {
	typ       config.CheckerType
	ep        endpoint
	proto     string // http_protocol: "1.0", "1.0C" or "1.1"
	urls      []*urlCheck
	tls       bool // SSL_GET
	compliant bool // tls_compliant
	bodyCap   int64
	key       string
}

// urlCheck is one url block, ready to run.
type urlCheck struct {
	path    string
	request []byte      // the request, built once
	tls     *tls.Config // SSL_GET: the client configuration, with this url's SNI
	sni     string
	digest  string // lower-case hex; "" when not checked
	status  []config.StatusRange
	regex   *bodyRegex
}

// userAgent is what keepalived sends: access-log filters and server rules
// written for keepalived's checks keep working.
const userAgent = "KeepAliveClient"

func newHTTPChecker(c *config.Checker, opts CheckerOptions) (Checker, error) {
	ep, err := newEndpoint(c)
	if err != nil {
		return nil, err
	}
	h := &httpChecker{typ: c.Type, ep: ep, tls: c.Type == config.SSLGet, bodyCap: opts.BodyCap}
	if h.bodyCap <= 0 {
		h.bodyCap = config.DefaultBodyCap
	}
	o := c.HTTP
	if o == nil {
		o = &config.HTTPOptions{}
	}
	switch h.proto = o.Protocol; h.proto {
	case "":
		h.proto = "1.0"
	case "1.0", "1.0C", "1.1":
	default:
		return nil, fmt.Errorf("%s %s: http_protocol %q: %w", c.Pos, c.Type, o.Protocol, errConfig)
	}
	if len(o.URLs) == 0 {
		return nil, fmt.Errorf("%s %s: no url: %w", c.Pos, c.Type, errConfig)
	}
	h.compliant = h.tls && o.TLSCompliant
	var base *tls.Config
	if h.tls {
		if base, err = newTLSConfig(opts.SSL); err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.Pos, c.Type, err)
		}
	}
	var key strings.Builder
	fmt.Fprintf(&key, "%s %s http_protocol %s", c.Type, ep.key(), h.proto)
	if h.compliant {
		key.WriteString(" tls_compliant")
	}
	for _, u := range o.URLs {
		uc, err := newURLCheck(c, o, u, base, ep)
		if err != nil {
			return nil, err
		}
		h.urls = append(h.urls, uc)
		fmt.Fprintf(&key, " url{%q sni %q digest %q status %v", uc.request, uc.sni, uc.digest, uc.status)
		if uc.regex != nil {
			fmt.Fprintf(&key, " regex %q %t %d %d", uc.regex.re, uc.regex.noMatch, uc.regex.min, uc.regex.max)
		}
		key.WriteString("}")
	}
	h.key = key.String()
	return h, nil
}

// newURLCheck prepares one url: its request, TLS configuration, digest,
// status ranges and regex.
func newURLCheck(c *config.Checker, o *config.HTTPOptions, u *config.URL, base *tls.Config, ep endpoint) (*urlCheck, error) {
	if u.Path == "" || strings.ContainsFunc(u.Path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("%s: url path %q: %w", u.Pos, u.Path, errConfig)
	}
	uc := &urlCheck{path: u.Path, digest: strings.ToLower(u.Digest), status: u.StatusCodes}
	if uc.digest != "" {
		if b, err := hex.DecodeString(uc.digest); err != nil || len(b) != md5.Size {
			return nil, fmt.Errorf("%s: digest %q is not an MD5 in hex: %w", u.Pos, u.Digest, errConfig)
		}
	}
	if len(uc.status) == 0 {
		uc.status = []config.StatusRange{{Low: config.DefaultStatusCodeLow, High: config.DefaultStatusCodeHigh}}
	}
	vhost := u.VirtualHost
	if vhost == "" {
		vhost = o.VirtualHost
	}
	host := vhost
	if host == "" {
		host = ep.addr.String() // "198.18.1.2:80" or "[2001:db8::1]:80", as keepalived
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("%s: virtualhost %q: %w", u.Pos, host, errConfig)
	}
	uc.request = buildRequest(o.Protocol, u.Path, host)
	if base != nil {
		if o.EnableSNI {
			uc.sni = o.SNIName
			if uc.sni == "" {
				uc.sni = vhost
			}
			if _, err := netip.ParseAddr(uc.sni); err == nil {
				uc.sni = "" // SNI never carries an address
			}
		}
		uc.tls = base.Clone()
		uc.tls.ServerName = uc.sni
	}
	var err error
	if uc.regex, err = newBodyRegex(u); err != nil {
		return nil, fmt.Errorf("%s %s: %w", c.Pos, c.Type, err)
	}
	return uc, nil
}

// buildRequest renders the GET request for http_protocol proto.
func buildRequest(proto, path, host string) []byte {
	version, closeHdr := "1.0", false
	switch proto {
	case "1.0C":
		closeHdr = true
	case "1.1":
		version, closeHdr = "1.1", true
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/%s\r\nUser-Agent: %s\r\nHost: %s\r\n", path, version, userAgent, host)
	if closeHdr {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// Check fetches every url and judges it.
func (h *httpChecker) Check(ctx context.Context) Result {
	r := newReport(h.String())
	ctx, cancel := h.ep.withTimeout(ctx)
	defer cancel()
	for _, u := range h.urls {
		r.step("GET %s", u.path)
		f, err := h.fetch(ctx, u, false)
		if err != nil {
			return r.fail(err)
		}
		r.step("status %d", f.Status)
		if !statusIn(f.Status, u.status) {
			return r.fail(fmt.Errorf("status %d not in %s", f.Status, rangesString(u.status)))
		}
		if u.digest != "" {
			if f.Digest != u.digest {
				return r.fail(fmt.Errorf("digest %s, want %s", f.Digest, u.digest))
			}
			r.step("digest ok")
		}
		if u.regex != nil {
			if err := u.regex.check(f.body); err != nil {
				return r.fail(err)
			}
			r.step("regex ok")
		}
	}
	return r.ok()
}

// URLResult is what one url of an HTTP_GET or SSL_GET block fetched.
type URLResult struct {
	Path      string
	Proto     string // "HTTP/1.0" or "HTTP/1.1"
	Status    int
	Reason    string
	Header    []HeaderField
	BodyBytes int64
	Digest    string // lower-case hex MD5 of the body
	Request   []byte // the request sent

	body []byte // the body, kept only for a regex
}

// FetchURLs fetches every url of an HTTP_GET or SSL_GET block as the check
// does, and returns what came back without judging it: the body's digest
// is always computed (genhash). connect_timeout bounds the whole call.
func FetchURLs(ctx context.Context, c *config.Checker, opts CheckerOptions) ([]URLResult, error) {
	ck, err := newHTTPChecker(c, opts)
	if err != nil {
		return nil, err
	}
	h := ck.(*httpChecker)
	ctx, cancel := h.ep.withTimeout(ctx)
	defer cancel()
	var out []URLResult
	for _, u := range h.urls {
		f, err := h.fetch(ctx, u, true)
		if err != nil {
			return out, fmt.Errorf("GET %s: %w", u.path, err)
		}
		out = append(out, *f)
	}
	return out, nil
}

// readers recycles the buffered readers of responses.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// copyBufs recycles the buffers bodies are streamed through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// farPast is a deadline that has passed: setting it aborts blocked I/O.
var farPast = time.Unix(1, 0)

// fetch runs one url's exchange within ctx. The body is read (and hashed)
// only when the url's status is in range and something needs it, or when
// all is set.
func (h *httpChecker) fetch(ctx context.Context, u *urlCheck, all bool) (*URLResult, error) {
	c, err := h.ep.dialRaw(ctx, h.tls) // the deadline of ctx is left set on c
	if err != nil {
		return nil, fmt.Errorf("connect: %v: %w", h.ep.addr, err)
	}
	defer c.Close() // a RST: SO_LINGER is 0
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(farPast) })
	defer stop()

	var rw io.ReadWriter = c
	var ec *eofConn
	var tc *tls.Conn
	if h.tls {
		ec = &eofConn{Conn: c}
		tc = tls.Client(ec, u.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		rw = tc
	}
	if _, err := rw.Write(u.request); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(rw)
	defer func() { br.Reset(nil); readers.Put(br) }()

	head, err := readResponseHead(br)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	f := &URLResult{Path: u.path, Proto: head.proto, Status: head.status, Reason: head.reason, Header: head.header, Request: u.request}
	if all || (statusIn(head.status, u.status) && (u.digest != "" || u.regex != nil)) {
		if err := h.readBody(br, head, u, f, all); err != nil {
			return nil, err
		}
		if h.compliant && head.length < 0 && !head.chunked && ec.eof {
			return nil, fmt.Errorf("read body: %w", errNoCloseNotify)
		}
	}
	if h.compliant {
		_ = tc.CloseWrite() // close_notify, as a TLS-compliant client ends
	}
	return f, nil
}

// readBody streams the body into the digest (and, for a regex, a buffer
// bounded by the body cap).
func (h *httpChecker) readBody(br *bufio.Reader, head *responseHead, u *urlCheck, f *URLResult, all bool) error {
	// The digest covers the body as transmitted, chunk framing included,
	// as keepalived's HTTP_GET and genhash compute it: digest lines made
	// for keepalived keep matching. The regex sees the decoded body.
	var md hash.Hash
	if u.digest != "" || all {
		md = md5.New()
	}
	var kept *bytes.Buffer
	w := io.Discard
	if u.regex != nil {
		kept = &bytes.Buffer{}
		w = kept
	}
	var raw io.Writer
	if md != nil {
		raw = md
	}
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(w, head.body(br, h.bodyCap, raw), *buf)
	copyBufs.Put(buf)
	f.BodyBytes = n
	if err != nil {
		return fmt.Errorf("read body after %d bytes: %w", n, err)
	}
	if md != nil {
		f.Digest = hex.EncodeToString(md.Sum(nil))
	}
	if kept != nil {
		f.body = kept.Bytes()
	}
	return nil
}

// statusIn reports whether status is in one of ranges.
func statusIn(status int, ranges []config.StatusRange) bool {
	for _, r := range ranges {
		if status >= r.Low && status <= r.High {
			return true
		}
	}
	return false
}

// rangesString renders ranges as keepalived's status_code line does.
func rangesString(ranges []config.StatusRange) string {
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = strconv.Itoa(r.Low)
		if r.High != r.Low {
			parts[i] += "-" + strconv.Itoa(r.High)
		}
	}
	return strings.Join(parts, " ")
}

// Key identifies the check: type, endpoint, connection options and every
// url's request and tests.
func (h *httpChecker) Key() string { return h.key }

// String names the check: "HTTP_GET 198.18.1.2:80".
func (h *httpChecker) String() string { return string(h.typ) + " " + h.ep.String() }
