package prober

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// errFileFault is a tracked file whose number puts the real server in
// fault.
var errFileFault = errors.New("tracked file in fault state")

// fileChecker is FILE_CHECK: the number in the track_file's file (the
// first 127 bytes read as C's strtol base 0: leading blanks, a sign, 0x
// for hex, a leading 0 for octal, text after the number ignored; a
// missing, empty or unreadable file is 0; a number beyond 32 bits keeps
// the previous value) sets the real server's state, as keepalived's
// update_track_file_status does:
//   - weight 0: a non-zero number is a fault (down), 0 is up; with
//     reverse the other way round;
//   - any other weight: the server stays up and number × weight (negated
//     with reverse) is added to its weight; only a product at or below
//     -2^31 is a fault.
//
// It is read every [FileCheckInterval] (keepalived uses inotify).
type fileChecker struct {
	name    string // the track_file's name
	path    string
	weight  int
	reverse bool

	mu   sync.Mutex
	last int64 // the last valid number read
}

func newFileChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	f := c.File
	if f == nil || f.Path == "" {
		return nil, fmt.Errorf("%s FILE_CHECK: track_file without a file: %w", c.Pos, errConfig)
	}
	return &fileChecker{name: f.TrackFile, path: f.Path, weight: f.Weight, reverse: f.Reverse}, nil
}

// Check reads the file.
func (f *fileChecker) Check(ctx context.Context) Result {
	r := newReport(f.String())
	v, ok := readTrackFile(f.path)
	f.mu.Lock()
	if ok {
		f.last = v
	} else {
		r.step("invalid number in %s, keeping %d", f.path, f.last)
		v = f.last
	}
	f.mu.Unlock()
	r.step("value %d", v)
	w, fault := trackFileStatus(v, f.weight, f.reverse)
	if fault {
		return r.fail(fmt.Errorf("value %d, weight %d: %w", v, f.weight, errFileFault))
	}
	res := r.ok()
	if f.weight != 0 {
		res.Weight = WeightChange{Kind: WeightOffset, Value: w}
	}
	return res
}

// trackFileStatus is keepalived's rule: the weight offset of value under
// weight, and whether it is a fault.
func trackFileStatus(value int64, weight int, reverse bool) (offset int, fault bool) {
	mult := int64(1)
	if reverse {
		mult = -1
	}
	if weight == 0 {
		return 0, (value != 0) != reverse
	}
	p := value * int64(weight) * mult
	if p <= math.MinInt32 {
		return 0, true
	}
	return int(min(p, math.MaxInt32)), false
}

// readTrackFile reads the number as process_track_file does; ok is false
// when the number is out of range (the previous value stands).
func readTrackFile(path string) (int64, bool) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, true
	}
	defer fh.Close()
	buf := make([]byte, 127)
	n, _ := io.ReadFull(fh, buf)
	if n <= 0 {
		return 0, true
	}
	return parseCLong(string(buf[:n]))
}

// parseCLong reads a number the way strtol(s, NULL, 0) does, within the
// range keepalived accepts (INT32_MIN..INT32_MAX+1); no digits reads 0.
func parseCLong(s string) (int64, bool) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isDigitIn(s[2], 16):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base = 8
	}
	end := 0
	for end < len(s) && isDigitIn(s[end], base) {
		end++
	}
	if end == 0 {
		return 0, true
	}
	v, err := strconv.ParseInt(s[:end], base, 64)
	if err != nil { // beyond 64 bits: strtol sets ERANGE
		return 0, false
	}
	if neg {
		v = -v
	}
	if v < math.MinInt32 || v > math.MaxInt32+1 {
		return v, false
	}
	return v, true
}

// isDigitIn reports whether c is a digit of base.
func isDigitIn(c byte, base int) bool {
	var d int
	switch {
	case c >= '0' && c <= '9':
		d = int(c - '0')
	case c >= 'a' && c <= 'z':
		d = int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		d = int(c-'A') + 10
	default:
		return false
	}
	return d < base
}

// Key identifies the check: file, weight and direction.
func (f *fileChecker) Key() string {
	return fmt.Sprintf("%s %s weight %d reverse %t", config.FileCheck, f.path, f.weight, f.reverse)
}

// String names the check: "FILE_CHECK maint (/run/maint)".
func (f *fileChecker) String() string {
	return fmt.Sprintf("%s %s (%s)", config.FileCheck, f.name, f.path)
}
