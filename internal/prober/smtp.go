package prober

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// smtpLineMax is keepalived's SMTP_BUFF_MAX: a line longer than this wraps
// the buffer (the start of it is dropped).
const smtpLineMax = 512

// errSMTP is an SMTP exchange that does not go as keepalived's state
// machine wants.
var errSMTP = errors.New("SMTP check failed")

// smtpChecker is SMTP_CHECK: for each host (the block's own connection
// options, then each legacy host { } block; keepalived makes each host a
// checker of its own, lvsprobe checks them in turn in one attempt, so the
// real server is up only while all pass, as keepalived's would be): connect,
// read a line whose status is 220, send "HELO helo_name", read a 250
// line, send "QUIT", read one more line (any). A status is three digits
// followed by a space or the end of the line (smtp_get_status: "220-"
// multi-line banners fail, as in keepalived). Each host's exchange is
// bounded as a whole by its connect_timeout.
type smtpChecker struct {
	helo  string
	hosts []endpoint
}

func newSMTPChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	s := &smtpChecker{helo: config.DefaultSMTPHeloName}
	var blocks []*config.Checker
	if o := c.SMTP; o != nil {
		if o.HeloName != "" {
			s.helo = o.HeloName
		}
		if !o.HostsOnly {
			blocks = append(blocks, c)
		}
		blocks = append(blocks, o.Hosts...)
	} else {
		blocks = append(blocks, c)
	}
	if strings.ContainsAny(s.helo, "\r\n") {
		return nil, fmt.Errorf("%s SMTP_CHECK: helo_name %q has a line break: %w", c.Pos, s.helo, errConfig)
	}
	for _, b := range blocks {
		ep, err := newEndpoint(b)
		if err != nil {
			return nil, err
		}
		s.hosts = append(s.hosts, ep)
	}
	return s, nil
}

// attemptTimeout bounds one attempt: every host's exchange in turn.
func (s *smtpChecker) attemptTimeout() (t time.Duration) {
	for _, h := range s.hosts {
		t += h.timeout
	}
	return t
}

// Check talks to each host in turn; the first failure decides.
func (s *smtpChecker) Check(ctx context.Context) Result {
	r := newReport(s.String())
	for _, h := range s.hosts {
		if len(s.hosts) > 1 {
			r.step("host %s", h)
		}
		if err := s.talk(ctx, r, h); err != nil {
			return r.fail(err)
		}
	}
	return r.ok()
}

// talk runs keepalived's SMTP state machine against one host.
func (s *smtpChecker) talk(ctx context.Context, r *report, h endpoint) error {
	ctx, cancel := h.withTimeout(ctx)
	defer cancel()
	c, err := h.dialRaw(ctx, true) // the deadline of ctx is left set on c
	if err != nil {
		return fmt.Errorf("connect: %v: %w", h.addr, err)
	}
	defer c.Close()
	stop := closeOnDone(ctx, c)
	defer stop()
	lr := &smtpLineReader{c: c}
	line, err := lr.line()
	if err != nil {
		return fmt.Errorf("read banner: %w", ctxErr(ctx, err))
	}
	if st := smtpStatus(line); st != 220 {
		return fmt.Errorf("bad greeting banner %q: %w", trimLine(line), errSMTP)
	}
	r.step("banner 220")
	if _, err := c.Write([]byte("HELO " + s.helo + "\r\n")); err != nil {
		return fmt.Errorf("send HELO: %w", err)
	}
	if line, err = lr.line(); err != nil {
		return fmt.Errorf("read HELO response: %w", ctxErr(ctx, err))
	}
	if st := smtpStatus(line); st != 250 {
		return fmt.Errorf("bad HELO response %q: %w", trimLine(line), errSMTP)
	}
	r.step("HELO 250")
	if _, err := c.Write([]byte("QUIT\r\n")); err != nil {
		return fmt.Errorf("send QUIT: %w", err)
	}
	if _, err := lr.line(); err != nil {
		return fmt.Errorf("read QUIT response: %w", ctxErr(ctx, err))
	}
	r.step("QUIT")
	return nil
}

// smtpLineReader reads lines as smtp_get_line_cb: each line starts with an
// empty buffer; data is read until a '\n' is in the buffer, and what came
// after that newline in the same read is dropped.
type smtpLineReader struct {
	c   net.Conn
	buf [smtpLineMax]byte
}

// line returns the text before the first '\n' of the next line.
func (l *smtpLineReader) line() ([]byte, error) {
	n := 0
	for {
		if n >= smtpLineMax-1 {
			n = 0 // keepalived wraps a full buffer by clearing it
		}
		k, err := l.c.Read(l.buf[n : smtpLineMax-1])
		if k > 0 {
			n += k
			if i := bytes.IndexByte(l.buf[:n], '\n'); i >= 0 {
				return l.buf[:i], nil
			}
			continue
		}
		if err == nil {
			continue
		}
		return nil, err
	}
}

// smtpStatus is keepalived's smtp_get_status: the status when the line
// starts with exactly three digits followed by a space or its end, else
// -1. keepalived's strtoul also skips leading blanks and takes a sign;
// neither occurs in a real reply.
func smtpStatus(line []byte) int {
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i] // the C string ends at a NUL
	}
	if len(line) < 3 || len(line) > 3 && line[3] != ' ' {
		return -1
	}
	st := 0
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return -1
		}
		st = st*10 + int(c-'0')
	}
	return st
}

// trimLine shortens a line for a message.
func trimLine(b []byte) string {
	s := strings.TrimRight(string(b), "\r")
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// Key identifies the check: the hosts and helo_name.
func (s *smtpChecker) Key() string {
	k := string(config.SMTPCheck) + " helo " + s.helo
	for _, h := range s.hosts {
		k += " [" + h.key() + "]"
	}
	return k
}

// String names the check: "SMTP_CHECK 198.18.1.2:25".
func (s *smtpChecker) String() string {
	names := make([]string, len(s.hosts))
	for i, h := range s.hosts {
		names[i] = h.String()
	}
	return string(config.SMTPCheck) + " " + strings.Join(names, ",")
}
