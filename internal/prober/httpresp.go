package prober

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits of the HTTP/1.x response reader: a server that sends more is
// lying or broken, and the check fails rather than buffering it.
const (
	maxLineLen     = 8 << 10  // one status or header line
	maxHeaderBytes = 64 << 10 // every header line (and trailer) together
	maxHeaders     = 128      // header fields
	maxInterim     = 8        // 1xx interim responses skipped
)

// Errors of the HTTP/1.x response reader.
var (
	errMalformed    = errors.New("malformed HTTP response")
	errBodyTooLarge = errors.New("body larger than the cap")
)

// HeaderField is one header line of a response, as received.
type HeaderField struct {
	Name  string
	Value string
}

// responseHead is the status line and header of an HTTP/1.x response, and
// how its body is framed.
type responseHead struct {
	proto   string // "HTTP/1.0" or "HTTP/1.1"
	status  int
	reason  string
	header  []HeaderField
	length  int64 // the body's length; -1 when it runs to the close or is chunked
	chunked bool
}

// readResponseHead reads a response's status line and header from br,
// skipping 1xx interim responses. It accepts bare LF line ends and obsolete
// line folding, and rejects anything else that is not HTTP/1.x.
func readResponseHead(br *bufio.Reader) (*responseHead, error) {
	budget := maxHeaderBytes
	for range maxInterim + 1 {
		h, err := readOneHead(br, &budget)
		if err != nil {
			return nil, err
		}
		if h.status >= 200 || h.status == 101 {
			return h, nil
		}
	}
	return nil, fmt.Errorf("%w: more than %d interim responses", errMalformed, maxInterim)
}

func readOneHead(br *bufio.Reader, budget *int) (*responseHead, error) {
	line, err := readLine(br, budget)
	if err != nil {
		return nil, fmt.Errorf("status line: %w", err)
	}
	h := &responseHead{length: -1}
	proto, rest, _ := strings.Cut(line, " ")
	if proto != "HTTP/1.0" && proto != "HTTP/1.1" {
		return nil, fmt.Errorf("%w: status line %.40q", errMalformed, line)
	}
	code, reason, _ := strings.Cut(strings.TrimLeft(rest, " "), " ")
	if len(code) != 3 || code[0] < '1' || code[0] > '9' {
		return nil, fmt.Errorf("%w: status code %.10q", errMalformed, code)
	}
	status, err := strconv.Atoi(code)
	if err != nil {
		return nil, fmt.Errorf("%w: status code %.10q", errMalformed, code)
	}
	h.proto, h.status, h.reason = proto, status, reason
	for {
		line, err := readLine(br, budget)
		if err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' { // obsolete line folding
			if len(h.header) == 0 {
				return nil, fmt.Errorf("%w: folded first header line", errMalformed)
			}
			last := &h.header[len(h.header)-1]
			last.Value += " " + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) {
			return nil, fmt.Errorf("%w: header line %.40q", errMalformed, line)
		}
		if len(h.header) == maxHeaders {
			return nil, fmt.Errorf("%w: more than %d header fields", errMalformed, maxHeaders)
		}
		h.header = append(h.header, HeaderField{Name: name, Value: strings.TrimSpace(value)})
	}
	return h, h.framing()
}

// framing decides how the body is delimited (RFC 9112 section 6.3).
func (h *responseHead) framing() error {
	if h.status < 200 || h.status == 204 || h.status == 304 {
		h.length = 0
		return nil
	}
	var te []string
	cl := int64(-1)
	for _, f := range h.header {
		switch {
		case strings.EqualFold(f.Name, "Transfer-Encoding"):
			for _, c := range strings.Split(f.Value, ",") {
				if c = strings.TrimSpace(c); c != "" {
					te = append(te, strings.ToLower(c))
				}
			}
		case strings.EqualFold(f.Name, "Content-Length"):
			for _, v := range strings.Split(f.Value, ",") {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil || n < 0 || (cl >= 0 && n != cl) {
					return fmt.Errorf("%w: Content-Length %.40q", errMalformed, f.Value)
				}
				cl = n
			}
		}
	}
	switch {
	case len(te) > 0:
		h.chunked = te[len(te)-1] == "chunked" // otherwise the body runs to the close
	case cl >= 0:
		h.length = cl
	}
	return nil
}

// readLine reads one line ending in LF (CRLF or bare LF), at most
// maxLineLen long, and charges it to budget.
func readLine(br *bufio.Reader, budget *int) (string, error) {
	return readLineTee(br, budget, nil)
}

// readLineTee is readLine that also hands the line as received, line end
// included, to raw when raw is not nil.
func readLineTee(br *bufio.Reader, budget *int, raw io.Writer) (string, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return "", fmt.Errorf("%w: header larger than %d bytes", errMalformed, maxHeaderBytes)
		}
		if len(buf)+len(frag) > maxLineLen {
			return "", fmt.Errorf("%w: line longer than %d bytes", errMalformed, maxLineLen)
		}
		buf = append(buf, frag...)
		switch {
		case err == nil:
			if raw != nil {
				_, _ = raw.Write(buf)
			}
			buf = bytes.TrimSuffix(buf[:len(buf)-1], []byte{'\r'})
			return string(buf), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("%w: truncated line: %w", errMalformed, io.ErrUnexpectedEOF)
		default:
			return "", err
		}
	}
}

// isToken reports whether s is a non-empty RFC 9110 token (a field name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// body returns a reader of the decoded body that fails with
// errBodyTooLarge as soon as more than limit bytes arrive (or are
// announced by Content-Length) and with io.ErrUnexpectedEOF when the body
// ends early. When raw is not nil, it receives the body as transmitted:
// the same bytes, except that a chunked body keeps its chunk framing and
// trailer there (keepalived digests the body that way).
func (h *responseHead) body(br *bufio.Reader, limit int64, raw io.Writer) io.Reader {
	b := &bodyReader{br: br, left: h.length, limit: limit, chunked: h.chunked, raw: raw}
	if h.length > limit {
		b.err = fmt.Errorf("%w: Content-Length %d over %d", errBodyTooLarge, h.length, limit)
	}
	return b
}

// bodyReader reads a body framed by length, by chunks or by the close.
type bodyReader struct {
	br      *bufio.Reader
	left    int64 // bytes left: of the body (length framing) or of the chunk (chunked); -1 to the close
	limit   int64 // bytes allowed in all
	read    int64 // bytes read so far
	chunked bool
	inChunk bool // a chunk's data has begun (its CRLF is still due)
	budget  int  // bytes allowed for chunk-size lines and trailers
	raw     io.Writer
	err     error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.chunked && b.left <= 0 {
		if b.err = b.nextChunk(); b.err != nil {
			return 0, b.err
		}
	}
	if b.left == 0 {
		b.err = io.EOF
		return 0, b.err
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	if room := b.limit - b.read + 1; int64(len(p)) > room {
		p = p[:room] // read one byte past the limit to tell "exactly at" from "over"
	}
	n, err := b.br.Read(p)
	if b.raw != nil && n > 0 {
		_, _ = b.raw.Write(p[:min(int64(n), b.limit-b.read)])
	}
	b.read += int64(n)
	if b.left > 0 {
		b.left -= int64(n)
	}
	switch {
	case b.read > b.limit:
		b.err = fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, b.limit)
		return n - 1, b.err
	case errors.Is(err, io.EOF) && !b.chunked && b.left <= 0:
		b.err = io.EOF // the close ends the body, or came right after its last byte
	case errors.Is(err, io.EOF):
		b.err = fmt.Errorf("body: %w", io.ErrUnexpectedEOF)
	case err != nil:
		b.err = err
	}
	return n, b.err
}

// nextChunk reads the CRLF that ends the previous chunk and the size line
// of the next; after the last chunk it reads the trailer and sets left to
// 0.
func (b *bodyReader) nextChunk() error {
	if b.budget == 0 {
		b.budget = maxHeaderBytes
	}
	if b.inChunk {
		line, err := readLineTee(b.br, &b.budget, b.raw)
		if err != nil {
			return fmt.Errorf("chunk end: %w", err)
		}
		if line != "" {
			return fmt.Errorf("%w: data after chunk", errMalformed)
		}
	}
	line, err := readLineTee(b.br, &b.budget, b.raw)
	if err != nil {
		return fmt.Errorf("chunk size: %w", err)
	}
	sz, _, _ := strings.Cut(line, ";")
	sz = strings.TrimRight(sz, " \t")
	n, err := strconv.ParseInt(sz, 16, 64)
	if err != nil || n < 0 || len(sz) > 16 || strings.HasPrefix(sz, "+") {
		return fmt.Errorf("%w: chunk size %.20q", errMalformed, line)
	}
	if n == 0 {
		for { // trailer fields, up to the blank line
			line, err := readLineTee(b.br, &b.budget, b.raw)
			if err != nil {
				return fmt.Errorf("trailer: %w", err)
			}
			if line == "" {
				b.left, b.chunked = 0, false
				return nil
			}
		}
	}
	b.left, b.inChunk = n, true
	return nil
}
