package prober

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads a response from s with a body limit.
func readAll(s string, limit int64) (*responseHead, []byte, error) {
	return readAllFrom(strings.NewReader(s), limit)
}

func readAllFrom(r io.Reader, limit int64) (*responseHead, []byte, error) {
	h, b, _, err := readAllRaw(r, limit)
	return h, b, err
}

// readAllRaw also returns the body as transmitted.
func readAllRaw(r io.Reader, limit int64) (*responseHead, []byte, []byte, error) {
	br := bufio.NewReaderSize(r, 16)
	h, err := readResponseHead(br)
	if err != nil {
		return nil, nil, nil, err
	}
	var raw bytes.Buffer
	b, err := io.ReadAll(h.body(br, limit, &raw))
	return h, b, raw.Bytes(), err
}

func TestReadResponse(t *testing.T) {
	long := strings.Repeat("x", maxLineLen+1)
	tests := []struct {
		name    string
		in      string
		limit   int64
		status  int
		body    string
		wantErr error // nil: success
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello+extra", 100, 200, "hello", nil},
		{"to close", "HTTP/1.0 503 Service Unavailable\r\nServer: x\r\n\r\nbusy\n", 100, 503, "busy\n", nil},
		{"length then EOF", "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + strings.Repeat("b", 40), 100, 200, strings.Repeat("b", 40), nil},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 100, 200, "ok", nil},
		{"no reason", "HTTP/1.1 204\r\n\r\n", 100, 204, "", nil},
		{"folded header", "HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\nContent-Length: 1\r\n\r\nz", 100, 200, "z", nil},
		{"interim skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny", 100, 200, "y", nil},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: t\r\n\r\n", 100, 200, "hello!", nil},
		{"chunked wins over length", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", 100, 200, "ab", nil},
		{"unknown coding reads to close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw", 100, 200, "raw", nil},
		{"equal lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\nContent-Length: 1\r\n\r\nq", 100, 200, "q", nil},
		{"exactly at cap", "HTTP/1.1 200 OK\r\n\r\n12345", 5, 200, "12345", nil},
		{"over cap to close", "HTTP/1.1 200 OK\r\n\r\n123456", 5, 200, "", errBodyTooLarge},
		{"over cap announced", "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n", 1 << 20, 200, "", errBodyTooLarge},
		{"over cap chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n1234\r\n4\r\n5678\r\n0\r\n\r\n", 6, 200, "", errBodyTooLarge},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 100, 200, "", io.ErrUnexpectedEOF},
		{"chunk cut", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 100, 200, "", io.ErrUnexpectedEOF},
		{"garbage", "SSH-2.0-OpenSSH_9.2\r\n", 100, 0, "", errMalformed},
		{"binary", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 100, 0, "", errMalformed},
		{"empty", "", 100, 0, "", io.ErrUnexpectedEOF},
		{"HTTP/2 preface", "HTTP/2 200\r\n\r\n", 100, 0, "", errMalformed},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", 100, 0, "", errMalformed},
		{"status too short", "HTTP/1.1 20 OK\r\n\r\n", 100, 0, "", errMalformed},
		{"bad header", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", 100, 0, "", errMalformed},
		{"space in name", "HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", 100, 0, "", errMalformed},
		{"fold first", "HTTP/1.1 200 OK\r\n folded\r\n\r\n", 100, 0, "", errMalformed},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 100, 0, "", errMalformed},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 100, 0, "", errMalformed},
		{"long line", "HTTP/1.1 200 OK\r\nX: " + long + "\r\n\r\n", 100, 0, "", errMalformed},
		{"too many headers", "HTTP/1.1 200 OK\r\n" + strings.Repeat("A: b\r\n", maxHeaders+1) + "\r\n", 100, 0, "", errMalformed},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 100, 200, "", errMalformed},
		{"chunk size overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 100, 200, "", errMalformed},
		{"data after chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", 100, 200, "", errMalformed},
		{"endless interim", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", maxInterim+2), 100, 0, "", errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, body, err := readAll(tt.in, tt.limit)
			// A reader that hands over its last bytes together with io.EOF
			// (as crypto/tls does before close_notify) must read the same.
			h2, body2, err2 := readAllFrom(iotest.DataErrReader(strings.NewReader(tt.in)), tt.limit)
			if !errors.Is(err2, tt.wantErr) || (err2 == nil) != (err == nil) || string(body2) != string(body) || (h2 == nil) != (h == nil) {
				t.Fatalf("with data and EOF together: body %q, %v; want %q, %v", body2, err2, body, err)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if h.status != tt.status || string(body) != tt.body {
				t.Fatalf("status %d body %q, want %d %q", h.status, body, tt.status, tt.body)
			}
			_, _, raw, _ := readAllRaw(strings.NewReader(tt.in), tt.limit)
			wantRaw := tt.body
			if h.chunked {
				wantRaw = tt.in[strings.Index(tt.in, "\r\n\r\n")+4:]
			}
			if string(raw) != wantRaw {
				t.Fatalf("raw body %q, want %q", raw, wantRaw)
			}
		})
	}
}

// FuzzReadResponse feeds arbitrary bytes to the response reader: it must
// never panic, never return more body than the limit, and must read back
// exactly any body framed by length or by chunks.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), []byte("body"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), []byte{})
	f.Add([]byte("HTTP/1.0 500 x\n\nerr"), []byte("\r\n0\r\n"))
	f.Add([]byte("\x16\x03\x01garbage"), []byte("x"))
	f.Fuzz(func(t *testing.T, raw, body []byte) {
		const limit = 1 << 10
		_, got, err := readAll(string(raw), limit)
		if err == nil && len(got) > limit {
			t.Fatalf("body of %d bytes over limit %d", len(got), limit)
		}
		for _, framed := range []string{
			fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body),
			fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body),
		} {
			if len(body) == 0 {
				continue
			}
			_, got, raw, err := readAllRaw(strings.NewReader(framed), int64(len(body)))
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("framed %q: body %q, %v; want %q", framed, got, err, body)
			}
			if wantRaw := framed[strings.Index(framed, "\r\n\r\n")+4:]; string(raw) != wantRaw {
				t.Fatalf("framed %q: raw %q, want %q", framed, raw, wantRaw)
			}
		}
	})
}
