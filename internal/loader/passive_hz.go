package loader

import (
	"bufio"
	"compress/gzip"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// kernelHZ returns the running kernel's CONFIG_HZ from /proc/config.gz
// or /boot/config-<release>, or 0 when neither says.
func kernelHZ() int {
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if z, err := gzip.NewReader(f); err == nil {
			if hz := parseConfigHZ(z); hz > 0 {
				return hz
			}
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return 0
	}
	f, err := os.Open("/boot/config-" + unix.ByteSliceToString(u.Release[:]))
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseConfigHZ(f)
}

// parseConfigHZ reads a kernel configuration and returns its CONFIG_HZ,
// or 0 when it has none that makes sense (1 to 10,000).
func parseConfigHZ(r io.Reader) int {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CONFIG_HZ=")
		if !ok {
			continue
		}
		hz, err := strconv.Atoi(v)
		if err != nil || hz < 1 || hz > 10000 {
			return 0
		}
		return hz
	}
	return 0
}

// gapJiffies is bpf/passive.c's gap_jiffies: the whole ticks of gap less
// one (a RST that many ticks or fewer after an event is surely within
// the gap), 0 when HZ is unknown or the gap under two ticks.
func gapJiffies(gap time.Duration, hz int) uint32 {
	if hz <= 0 {
		return 0
	}
	tick := time.Second / time.Duration(hz)
	n := gap / tick
	if n < 2 || n > 1<<31 {
		return 0
	}
	return uint32(n - 1)
}
