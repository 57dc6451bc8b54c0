// Package caps narrows the capability sets of the whole process (every
// thread, bounding, permitted, effective, inheritable and ambient) once a
// daemon has done the work that needed more.
//
// Capabilities belong to threads, and a Go program runs on many; Restrict
// changes them on every thread at once through
// [syscall.AllThreadsSyscall], which Go supports only in programs built
// without cgo (CGO_ENABLED=0, as `make build` does). Elsewhere Restrict
// returns [ErrCgo] and changes nothing.
package caps

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Cap is one capability, numbered as in linux/capability.h.
type Cap uint

// The capabilities lvsprobe reasons about by name.
const (
	Kill           Cap = unix.CAP_KILL
	SetGID         Cap = unix.CAP_SETGID
	SetUID         Cap = unix.CAP_SETUID
	SetPCap        Cap = unix.CAP_SETPCAP
	NetBindService Cap = unix.CAP_NET_BIND_SERVICE
	NetAdmin       Cap = unix.CAP_NET_ADMIN
	NetRaw         Cap = unix.CAP_NET_RAW
	SysAdmin       Cap = unix.CAP_SYS_ADMIN
	Perfmon        Cap = unix.CAP_PERFMON
	BPF            Cap = unix.CAP_BPF
)

// names are the capabilities' names as capabilities(7) spells them, by
// number.
var names = [...]string{
	"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid", "cap_kill",
	"cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable", "cap_net_bind_service",
	"cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner",
	"cap_sys_module", "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace", "cap_sys_pacct",
	"cap_sys_admin", "cap_sys_boot", "cap_sys_nice", "cap_sys_resource", "cap_sys_time",
	"cap_sys_tty_config", "cap_mknod", "cap_lease", "cap_audit_write", "cap_audit_control",
	"cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog", "cap_wake_alarm",
	"cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf", "cap_checkpoint_restore",
}

// String returns the capability's name ("cap_net_admin"), or cap_N for
// one this package has no name for.
func (c Cap) String() string {
	if int(c) < len(names) {
		return names[c]
	}
	return "cap_" + strconv.Itoa(int(c))
}

// Set is a set of capabilities, bit N standing for capability N.
type Set uint64

// Of returns the set of cs.
func Of(cs ...Cap) Set {
	var s Set
	for _, c := range cs {
		s |= 1 << c
	}
	return s
}

// Has reports whether c is in s.
func (s Set) Has(c Cap) bool { return c < 64 && s&(1<<c) != 0 }

// Caps returns the members of s in increasing order.
func (s Set) Caps() []Cap {
	out := make([]Cap, 0, bits.OnesCount64(uint64(s)))
	for v := uint64(s); v != 0; v &= v - 1 {
		out = append(out, Cap(bits.TrailingZeros64(v)))
	}
	return out
}

// String returns the members' names joined by commas, or "none".
func (s Set) String() string {
	if s == 0 {
		return "none"
	}
	var b strings.Builder
	for i, c := range s.Caps() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c.String())
	}
	return b.String()
}

// ErrUnknown is returned by [Parse] for a name that is no capability.
var ErrUnknown = errors.New("unknown capability")

// Parse parses a comma-separated list of capability names, with or
// without the cap_ prefix, in any case ("CAP_SETUID,kill"); "" is the
// empty set.
func Parse(s string) (Set, error) {
	var out Set
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	for f := range strings.SplitSeq(s, ",") {
		n := strings.ToLower(strings.TrimSpace(f))
		if !strings.HasPrefix(n, "cap_") {
			n = "cap_" + n
		}
		found := false
		for i, name := range names {
			if name == n {
				out |= 1 << i
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("parse capabilities %q: %w: %q", s, ErrUnknown, strings.TrimSpace(f))
		}
	}
	return out, nil
}

// State is the capability sets of the calling thread.
type State struct {
	Effective, Permitted, Inheritable, Bounding, Ambient Set
}

// Last returns the highest capability the running kernel knows
// (/proc/sys/kernel/cap_last_cap), or CAP_LAST_CAP of the headers when the
// file cannot be read.
func Last() Cap {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < 64 {
			return Cap(n)
		}
	}
	return unix.CAP_LAST_CAP
}

// Current returns the capability sets of the calling thread.
func Current() (State, error) {
	var st State
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return st, fmt.Errorf("read capabilities: %w", err)
	}
	st.Effective = Set(data[0].Effective) | Set(data[1].Effective)<<32
	st.Permitted = Set(data[0].Permitted) | Set(data[1].Permitted)<<32
	st.Inheritable = Set(data[0].Inheritable) | Set(data[1].Inheritable)<<32
	for c := Cap(0); c <= Last(); c++ {
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil && in == 1 {
			st.Bounding |= 1 << c
		}
		if in, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0); err == nil && in == 1 {
			st.Ambient |= 1 << c
		}
	}
	return st, nil
}

// ErrCgo is returned by [Restrict] in a program built with cgo, where Go
// cannot change every thread's capabilities.
var ErrCgo = errors.New("capabilities can be changed on every thread only in a program built without cgo (CGO_ENABLED=0)")

// Result says what [Restrict] did.
type Result struct {
	Before, After State
	// BoundingKept is true when the bounding set could not be narrowed
	// because the process lacked CAP_SETPCAP (a daemon started with
	// only ambient capabilities, under systemd: its bounding set is the
	// unit's CapabilityBoundingSet=).
	BoundingKept bool
}

// Restrict leaves every thread of the process with keep ∩ its permitted
// set as both permitted and effective set, no inheritable and no ambient
// capability and, when it holds CAP_SETPCAP, a bounding set of keep: no
// later execve, even of a set-user-ID-root program, gets back what was
// dropped. It is irreversible.
func Restrict(keep Set) (Result, error) {
	var r Result
	before, err := Current()
	if err != nil {
		return r, err
	}
	r.Before = before
	if before.Effective.Has(SetPCap) {
		for c := Cap(0); c <= Last(); c++ {
			if keep.Has(c) || !before.Bounding.Has(c) {
				continue
			}
			if err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); err != nil {
				return r, fmt.Errorf("drop %s from the bounding set: %w", c, err)
			}
		}
	} else {
		r.BoundingKept = before.Bounding&^keep != 0
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return r, fmt.Errorf("clear ambient capabilities: %w", err)
	}
	want := before.Permitted & keep
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(want), Permitted: uint32(want)},
		{Effective: uint32(want >> 32), Permitted: uint32(want >> 32)},
	}
	if err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != nil {
		return r, fmt.Errorf("set capabilities %s: %w", want, err)
	}
	if r.After, err = Current(); err != nil {
		return r, err
	}
	return r, nil
}

// allThreads runs a system call on every thread of the process.
func allThreads(trap, a1, a2, a3 uintptr) error {
	_, _, errno := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	switch errno {
	case 0:
		return nil
	case syscall.ENOTSUP:
		return ErrCgo
	default:
		return errno
	}
}
