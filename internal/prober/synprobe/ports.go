package synprobe

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// reservedPortsFile is the sysctl that keeps ports out of the kernel's
// ephemeral choice (per network namespace).
const reservedPortsFile = "/proc/sys/net/ipv4/ip_local_reserved_ports"

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

func (r portRange) String() string {
	if r.lo == r.hi {
		return strconv.Itoa(int(r.lo))
	}
	return fmt.Sprintf("%d-%d", r.lo, r.hi)
}

// size is the number of ports in r.
func (r portRange) size() int { return int(r.hi) - int(r.lo) + 1 }

// parsePortList parses the sysctl's format: comma-separated ports and
// lo-hi ranges, possibly empty.
func parsePortList(s string) ([]portRange, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []portRange
	for _, f := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(f), "-")
		l, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("parse port %q: %w", lo, err)
		}
		h := l
		if isRange {
			if h, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return nil, fmt.Errorf("parse port %q: %w", hi, err)
			}
		}
		if h < l {
			return nil, fmt.Errorf("parse port range %q: %w", f, errMalformed)
		}
		out = append(out, portRange{uint16(l), uint16(h)})
	}
	return out, nil
}

// formatPortList is the inverse of parsePortList.
func formatPortList(rs []portRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// reservation adds a port range to the kernel's reserved ports and takes
// it out again on release.
type reservation struct {
	file string
	r    portRange
}

// errPortsInUse is returned when the wanted range overlaps a different
// reserved range (probably another prober's).
var errPortsInUse = errors.New("port range already reserved")

// readPorts reads and parses the reserved-port list.
func readPorts(file string) ([]portRange, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read reserved ports: %w", err)
	}
	rs, err := parsePortList(string(b))
	if err != nil {
		return nil, fmt.Errorf("read reserved ports: %w", err)
	}
	return rs, nil
}

// writePorts writes the reserved-port list. The kernel reads an empty
// write as "no reservation"; a bare newline keeps the write non-empty.
func writePorts(file string, rs []portRange) error {
	return os.WriteFile(file, []byte(formatPortList(rs)+"\n"), 0o644)
}

// reservePorts reserves r in file (reservedPortsFile outside tests). A
// range equal to r that is already there is adopted: it is what a prober
// killed before it could clean up leaves behind.
func reservePorts(file string, r portRange) (*reservation, error) {
	cur, err := readPorts(file)
	if err != nil {
		return nil, err
	}
	for _, c := range cur {
		if c == r {
			return &reservation{file: file, r: r}, nil
		}
		if c.lo <= r.hi && r.lo <= c.hi {
			return nil, fmt.Errorf("reserve %s (have %s): %w", r, formatPortList(cur), errPortsInUse)
		}
	}
	if err := writePorts(file, append(cur, r)); err != nil {
		return nil, fmt.Errorf("reserve ports %s: %w", r, err)
	}
	return &reservation{file: file, r: r}, nil
}

// release takes the range out of the reserved-port list, leaving any
// other change made meanwhile alone.
func (v *reservation) release() error {
	cur, err := readPorts(v.file)
	if err != nil {
		return err
	}
	keep := cur[:0]
	for _, c := range cur {
		if c != v.r {
			keep = append(keep, c)
		}
	}
	if err := writePorts(v.file, keep); err != nil {
		return fmt.Errorf("release reserved ports: %w", err)
	}
	return nil
}
