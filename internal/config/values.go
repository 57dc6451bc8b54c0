package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Limits keepalived 2.2.7 applies to values.
const (
	ipvsWeightLimit = math.MaxInt32
	lvsMaxTimeout   = 86400 * 31
	timerMaxMicros  = math.MaxUint32 // connect_timeout limit (UINT_MAX µs)
)

var errMissing = errors.New("missing value")

// parseTimer reads decimal seconds with up to six decimal places (keepalived's
// read_timer) and checks them against [lo, hi]; hi 0 means no upper bound.
func parseTimer(s string, lo, hi time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, errMissing
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("negative number '%s'", s)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) > 6 {
		return 0, fmt.Errorf("number '%s' has too many decimal places", s)
	}
	if intPart == "" && frac == "" || !allDigits(intPart) || !allDigits(frac) {
		return 0, fmt.Errorf("invalid number '%s'", s)
	}
	whole := uint64(0)
	if intPart != "" {
		v, err := strconv.ParseUint(intPart, 10, 64)
		if err != nil || v > math.MaxInt64/uint64(time.Second) {
			return 0, fmt.Errorf("number '%s' out of range", s)
		}
		whole = v
	}
	micros := uint64(0)
	if frac != "" {
		f := frac + strings.Repeat("0", 6-len(frac))
		v, _ := strconv.ParseUint(f, 10, 64)
		micros = v
	}
	d := time.Duration(whole)*time.Second + time.Duration(micros)*time.Microsecond
	if d < lo || hi > 0 && d > hi {
		if hi > 0 {
			return 0, fmt.Errorf("number '%s' outside range [%s, %s]", s, secondsString(lo), secondsString(hi))
		}
		return 0, fmt.Errorf("number '%s' must be at least %s", s, secondsString(lo))
	}
	return d, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// secondsString formats d as decimal seconds with at most six decimals.
func secondsString(d time.Duration) string {
	us := d.Microseconds()
	s := strconv.FormatInt(us/1e6, 10)
	if f := us % 1e6; f != 0 {
		if f < 0 {
			f = -f
		}
		s += "." + strings.TrimRight(fmt.Sprintf("%06d", f), "0")
	}
	return s
}

// parseUint reads a decimal unsigned number in [lo, hi] (keepalived's
// read_unsigned: leading blanks skipped, no sign).
func parseUint(s string, lo, hi uint64) (uint64, error) {
	t := strings.TrimLeft(s, " \t")
	if t == "" {
		return 0, errMissing
	}
	if t[0] == '-' {
		return 0, fmt.Errorf("negative number '%s'", s)
	}
	if !allDigits(t) {
		return 0, fmt.Errorf("invalid number '%s'", s)
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number '%s' out of range", s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("number '%s' outside range [%d, %d]", s, lo, hi)
	}
	return v, nil
}

// parseInt reads a decimal signed number in [lo, hi].
func parseInt(s string, lo, hi int64) (int64, error) {
	if s == "" {
		return 0, errMissing
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid number '%s'", s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("number '%s' outside range [%d, %d]", s, lo, hi)
	}
	return v, nil
}

// parseBool reads keepalived's true/on/yes and false/off/no.
func parseBool(s string) (bool, error) {
	switch s {
	case "true", "on", "yes":
		return true, nil
	case "false", "off", "no":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean '%s' (want yes/no, on/off, true/false)", s)
}

// parseAddr reads a numeric IPv4 or IPv6 address (brackets allowed).
func parseAddr(s string) (netip.Addr, error) {
	t := s
	if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
		t = t[1 : len(t)-1]
	}
	a, err := netip.ParseAddr(t)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IP address '%s'", s)
	}
	return a.Unmap(), nil
}

// parsePort reads a port in [0, 65535]; 0 and absent both mean "none".
func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, nil
	}
	v, err := parseUint(s, 0, 65535)
	if err != nil {
		return 0, fmt.Errorf("invalid port '%s'", s)
	}
	return uint16(v), nil
}

// family returns "inet" or "inet6" for a.
func family(a netip.Addr) string {
	if a.Is4() {
		return "inet"
	}
	return "inet6"
}

// parseHex reads keepalived's hex strings (blanks allowed between digits).
// With wildcards, an x or X nibble matches anything: the mask has 0 bits
// there; without, mask is nil.
func parseHex(s string, wildcards bool) (data, mask []byte, err error) {
	var nib []byte
	var wild []bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			continue
		case c >= '0' && c <= '9':
			nib = append(nib, c-'0')
		case c >= 'a' && c <= 'f':
			nib = append(nib, c-'a'+10)
		case c >= 'A' && c <= 'F':
			nib = append(nib, c-'A'+10)
		case wildcards && (c == 'x' || c == 'X'):
			nib = append(nib, 0)
			wild = append(wild, true)
			continue
		default:
			return nil, nil, fmt.Errorf("invalid hex string '%s'", s)
		}
		wild = append(wild, false)
	}
	if len(nib) == 0 || len(nib)%2 != 0 {
		return nil, nil, fmt.Errorf("invalid hex string '%s'", s)
	}
	data = make([]byte, len(nib)/2)
	anyWild := false
	m := make([]byte, len(nib)/2)
	for i := range data {
		data[i] = nib[2*i]<<4 | nib[2*i+1]
		var mk byte = 0xff
		if wild[2*i] {
			mk &^= 0xf0
			anyWild = true
		}
		if wild[2*i+1] {
			mk &^= 0x0f
			anyWild = true
		}
		m[i] = mk
	}
	if anyWild {
		mask = m
	}
	return data, mask, nil
}

// tokenizeEscaped splits a raw line as keepalived's
// alloc_strvec_quoted_escaped: single or double quotes group, and
// backslash escapes (\n, \t, \xHH, octal, \cX...) are decoded.
func tokenizeEscaped(s string) ([]string, error) {
	var words []string
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return words, nil
		}
		var b []byte
		var q byte
		for i < len(s) {
			c := s[i]
			if q == 0 && (c == ' ' || c == '\t') {
				break
			}
			switch {
			case c == '\\':
				i++
				if i >= len(s) {
					return nil, errors.New("missing escaped character at end of line")
				}
				ch, n := unescape(s[i:])
				b = append(b, ch)
				i += n
				continue
			case q != 0 && c == q:
				q = 0
			case q == 0 && (c == '"' || c == '\''):
				q = c
			default:
				b = append(b, c)
			}
			i++
		}
		if q != 0 {
			return nil, fmt.Errorf("missing terminating %c", q)
		}
		words = append(words, string(b))
	}
}

// unescape decodes the escape at the start of s (after the backslash) and
// returns the byte and how many bytes of s it used.
func unescape(s string) (byte, int) {
	c := s[0]
	switch {
	case c == 'x' && len(s) > 1 && isHex(s[1]):
		var v byte
		n := 1
		for n < len(s) && isHex(s[n]) {
			v = v<<4 | hexVal(s[n])
			n++
		}
		return v, n
	case c == 'c' && len(s) > 1:
		return s[1] & 0x1f, 2
	case c >= '0' && c <= '7':
		v, n := c-'0', 1
		for n < 3 && n < len(s) && s[n] >= '0' && s[n] <= '7' {
			v = v<<3 | (s[n] - '0')
			n++
		}
		return v, n
	}
	m := map[byte]byte{'a': '\a', 'b': '\b', 'E': 0x1b, 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}
	if v, ok := m[c]; ok {
		return v, 1
	}
	return c, 1
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// prefixMask returns the IPv6 netmask of bits leading ones.
func prefixMask(bits int) netip.Addr {
	var b [16]byte
	for i := 0; i < bits && i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}
