package notify

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Errors a script is refused with (wrapped with the details).
var (
	// ErrNotFound: the program does not exist or cannot be resolved.
	ErrNotFound = errors.New("script not found")
	// ErrNotExecutable: the program is not executable by the script's user.
	ErrNotExecutable = errors.New("script not executable")
	// ErrInsecure: enable_script_security is set and the program, or a
	// directory above it, can be changed by someone other than root.
	ErrInsecure = errors.New("unsafe permissions on script")
	// ErrNoUser: the script's user or group does not exist.
	ErrNoUser = errors.New("script user unavailable")
	// ErrShell: the command needs a shell (keepalived's `</file` test),
	// which lvsprobe never runs.
	ErrShell = errors.New("shell syntax in script")
)

// csPath is the search path when PATH is unset (glibc's _CS_PATH).
const csPath = "/bin:/usr/bin"

// Command is a script ready to run: the program's resolved path, its
// argv (argv[0] is the path, as keepalived passes it) and who runs it.
type Command struct {
	Path     string
	Args     []string
	As       Identity
	Insecure bool   // run as root from a path others may change (allowed without enable_script_security)
	Source   string // FILE:LINE of the configuration line, for logs
}

// String is the command line for logs, each word quoted.
func (c *Command) String() string {
	q := make([]string, len(c.Args))
	for i, a := range c.Args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}

// policy is what resolving a script needs to know beyond the script.
type policy struct {
	security bool
	deflt    Identity // identity of scripts without a user
	defltErr error    // why there is none
	path     string   // PATH for bare names
	self     Identity // the daemon's effective user and group
	setid    bool     // the daemon may change user and group (CAP_SETUID and CAP_SETGID)
}

// canRunAs reports why a script cannot run as id: the daemon runs as
// another user (a systemd unit's User=) without the capabilities to switch.
func (p policy) canRunAs(id Identity) error {
	if p.setid || (id.UID == p.self.UID && id.GID == p.self.GID) {
		return nil
	}
	return fmt.Errorf("%w: the script runs as %s (uid:gid %d:%d) but lvsprobe runs as uid:gid %d:%d without CAP_SETUID and CAP_SETGID (see docs/systemd.md)",
		ErrNoUser, id.Name, id.UID, id.GID, p.self.UID, p.self.GID)
}

// resolve checks one script as keepalived's check_script_secure does and
// returns the command to run, or why it must not run. warn receives
// findings that do not refuse the script.
func resolve(args []string, userName, groupName string, p policy, warn func(msg string)) (*Command, error) {
	if len(args) == 0 || args[0] == "" {
		return nil, fmt.Errorf("%w: empty command", ErrNotFound)
	}
	if strings.HasPrefix(args[0], "<") || strings.HasPrefix(args[0], ">") {
		return nil, fmt.Errorf("%w: %q is shell redirection; use a program", ErrShell, args[0])
	}
	id := p.deflt
	if userName != "" {
		var err error
		if id, err = lookupIdentity(userName, groupName); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoUser, err)
		}
	} else if p.defltErr != nil {
		return nil, p.defltErr
	}

	if err := p.canRunAs(id); err != nil {
		return nil, err
	}

	name := args[0]
	if !strings.Contains(name, "/") {
		found, err := searchPath(name, p.path, id)
		if err != nil {
			return nil, err
		}
		warn(fmt.Sprintf("script %q resolved by path search to %q; please give the full path", name, found))
		name = found
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	// Keep the name the user wrote when a symbolic link points to a file
	// of another name in the same directory (multi-call binaries choose
	// their behaviour by it), as keepalived does.
	path, realFile := real, ""
	if filepath.Base(real) != filepath.Base(abs) {
		cand := filepath.Join(filepath.Dir(real), filepath.Base(abs))
		if sameFile(cand, real) {
			path, realFile = cand, real
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if !st.Mode().IsRegular() || !executable(sys, id) {
		return nil, fmt.Errorf("%w: %s for uid:gid %d:%d", ErrNotExecutable, path, id.UID, id.GID)
	}
	cmd := &Command{Path: path, Args: append([]string{path}, args[1:]...), As: id}

	protect := id.UID == 0 || id.GID == 0 ||
		(sys.Uid == 0 && sys.Mode&syscall.S_IXUSR != 0 && sys.Mode&syscall.S_ISUID != 0) ||
		(sys.Gid == 0 && sys.Mode&syscall.S_IXGRP != 0 && sys.Mode&syscall.S_ISGID != 0)
	if !protect {
		return cmd, nil
	}
	for _, f := range []string{path, realFile} {
		if f == "" {
			continue
		}
		if err := checkSecure(f); err != nil {
			if p.security {
				return nil, err
			}
			cmd.Insecure = true
			warn(err.Error() + " (allowed: enable_script_security is not set)")
		}
	}
	return cmd, nil
}

// sameFile reports whether a and b name the same inode.
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// executable reports whether a file with stat st can be executed by id,
// by keepalived's is_executable rule.
func executable(st *syscall.Stat_t, id Identity) bool {
	m := st.Mode
	switch {
	case id.UID == 0:
		return m&0o111 != 0
	case id.UID == st.Uid:
		return m&0o100 != 0
	case id.GID == st.Gid:
		return m&0o010 != 0
	default:
		return m&0o001 != 0
	}
}

// searchPath finds a bare program name in the directories of path, as
// keepalived's find_path does: the first regular file executable by id.
func searchPath(name, path string, id Identity) (string, error) {
	if path == "" {
		path = csPath
	}
	denied := false
	for dir := range strings.SplitSeq(path, ":") {
		if dir == "" {
			dir = "."
		}
		f := filepath.Join(dir, name)
		st, err := os.Stat(f)
		if err != nil {
			continue
		}
		if !st.Mode().IsRegular() || !executable(st.Sys().(*syscall.Stat_t), id) {
			denied = true
			continue
		}
		return f, nil
	}
	if denied {
		return "", fmt.Errorf("%w: %s in PATH for uid:gid %d:%d", ErrNotExecutable, name, id.UID, id.GID)
	}
	return "", fmt.Errorf("%w: %s in PATH %s", ErrNotFound, name, path)
}

// checkSecure walks every component of the absolute path f from "/" and
// fails when one is not owned by root, or (a directory without the sticky
// bit, or the file) is writable by a non-root group or by everyone —
// keepalived's check_security. Symbolic links are not followed.
func checkSecure(f string) error {
	parts := strings.Split(strings.TrimPrefix(f, "/"), "/")
	cur := "/"
	for i := -1; i < len(parts); i++ {
		if i >= 0 {
			cur = filepath.Join(cur, parts[i])
		}
		last := i == len(parts)-1
		st, err := os.Lstat(cur)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		mode := st.Mode()
		if (!last && !mode.IsDir()) || (last && !mode.IsRegular() && mode&fs.ModeSymlink == 0) {
			return fmt.Errorf("%w: wrong file type %s in script path %s", ErrInsecure, cur, f)
		}
		sys := st.Sys().(*syscall.Stat_t)
		writable := (sys.Gid != 0 && sys.Mode&0o020 != 0) || sys.Mode&0o002 != 0
		exposed := (mode.IsDir() && mode&fs.ModeSticky == 0) || mode.IsRegular()
		if sys.Uid != 0 || (exposed && writable) {
			return fmt.Errorf("%w: %s (owner uid %d, mode %04o) for script %s", ErrInsecure, cur, sys.Uid, sys.Mode&0o7777, f)
		}
	}
	return nil
}
