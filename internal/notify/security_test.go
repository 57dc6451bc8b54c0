package notify

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// nobody returns the uid and gid of the user nobody.
func nobody(t *testing.T) (uid, gid int) {
	t.Helper()
	id, err := lookupIdentity("nobody", "")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	return int(id.UID), int(id.GID)
}

// TestRefusedScripts: scripts keepalived would disable are refused when
// the configuration is loaded, with the reason.
func TestRefusedScripts(t *testing.T) {
	l := newLab(t)
	uid, gid := nobody(t)
	mkdir := func(name string, mode os.FileMode, owner int) string {
		d := filepath.Join(l.dir, name)
		if err := os.Mkdir(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, owner, 0); err != nil {
			t.Fatal(err)
		}
		return d
	}
	put := func(dir, name string, mode os.FileMode, gidOwner int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho ran "+name+" >"+l.fifo+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 0, gidOwner); err != nil {
			t.Fatal(err)
		}
		return p
	}
	open := mkdir("open", 0o777, 0)                   // world-writable, no sticky bit
	sticky := mkdir("sticky", os.ModeSticky|0o777, 0) // like /tmp
	theirs := mkdir("theirs", 0o755, uid)             // owned by someone else
	safe := mkdir("safe", 0o755, 0)
	link := filepath.Join(safe, "link")
	if err := os.Symlink(put(open, "target", 0o755, 0), link); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		path     string
		user     string // written after the command
		security bool
		want     error // nil: runs
	}{
		{name: "missing", path: filepath.Join(safe, "missing"), security: true, want: ErrNotFound},
		{name: "not executable", path: put(safe, "noexec", 0o644, 0), security: true, want: ErrNotExecutable},
		{name: "not executable by nobody", path: put(safe, "rootonly", 0o700, 0), user: "nobody", security: true, want: ErrNotExecutable},
		{name: "world-writable dir", path: put(open, "a", 0o755, 0), security: true, want: ErrInsecure},
		{name: "world-writable dir without security", path: put(open, "b", 0o755, 0), security: false},
		{name: "sticky world-writable dir", path: put(sticky, "c", 0o755, 0), security: true},
		{name: "dir of another owner", path: put(theirs, "d", 0o755, 0), security: true, want: ErrInsecure},
		{name: "group-writable, non-root group", path: put(safe, "e", 0o775, gid), security: true, want: ErrInsecure},
		{name: "group-writable, root group", path: put(safe, "f", 0o775, 0), security: true},
		{name: "world-writable file", path: put(safe, "g", 0o757, 0), security: true, want: ErrInsecure},
		{name: "symlink to an unsafe place", path: link, security: true, want: ErrInsecure},
		{name: "unsafe place, run as nobody", path: put(open, "h", 0o755, 0), user: "nobody", security: true},
		{name: "unknown user", path: put(safe, "i", 0o755, 0), user: "no-such-user-lvsprobe", security: true, want: ErrNoUser},
		{name: "shell redirection", path: "</etc/hostname", security: true, want: ErrShell},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			globals := "script_user root"
			if tt.security {
				globals += "\nenable_script_security"
			}
			line := fmt.Sprintf("  notify_down \"%s\" %s", tt.path, tt.user)
			r := New(Options{})
			err := r.Update(parse(t, conf(globals, "", line)))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Update: %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if st := r.Stats(); st.Refused != 1 {
					t.Errorf("refused %d, want 1", st.Refused)
				}
				r.RealServer(rsKey, false) // nothing to run, nothing queued
				if st := r.Stats(); st.Queued != 0 {
					t.Errorf("a refused script was queued: %+v", st)
				}
				return
			}
			start(t, r)
			r.RealServer(rsKey, false)
			if got := l.lineT(t); !strings.HasPrefix(got, "ran ") {
				t.Errorf("got %q", got)
			}
		})
	}
}

// TestScriptUser: a script runs as the user written after it, else as
// global script_user, with that user's group and no supplementary groups.
func TestScriptUser(t *testing.T) {
	l := newLab(t)
	uid, gid := nobody(t)
	s := l.script("id", `echo "$(id -u):$(id -g):$(id -G)" >@FIFO@`, 0o755)
	tests := []struct {
		name, globals, user, want string
	}{
		{"script user", "enable_script_security\nscript_user root", "nobody", fmt.Sprintf("%d:%d:%d", uid, gid, gid)},
		{"global script_user", "enable_script_security\nscript_user nobody", "", fmt.Sprintf("%d:%d:%d", uid, gid, gid)},
		{"group named", "script_user root", "nobody root", fmt.Sprintf("%d:0:0", uid)},
		{"root", "script_user root", "", "0:0:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{})
			if err := r.Update(parse(t, conf(tt.globals, "", fmt.Sprintf("  notify_down %s %s", s, tt.user)))); err != nil {
				t.Fatal(err)
			}
			start(t, r)
			r.RealServer(rsKey, false)
			if got := l.lineT(t); got != tt.want {
				t.Errorf("uid:gid:groups %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDefaultUser: without script_user, scripts run as keepalived_script
// when it exists, else as the daemon's user; with enable_script_security
// a missing keepalived_script refuses them, as keepalived does.
func TestDefaultUser(t *testing.T) {
	l := newLab(t)
	if _, err := user.Lookup(DefaultScriptUser); err == nil {
		t.Skipf("user %s exists on this machine; the test covers its absence", DefaultScriptUser)
	}
	s := l.script("id", `id -u >@FIFO@`, 0o755)
	r := New(Options{})
	if err := r.Update(parse(t, conf("enable_script_security", "", "  notify_down "+s))); !errors.Is(err, ErrNoUser) {
		t.Fatalf("with security: %v, want ErrNoUser", err)
	}
	// A user written after the script still works.
	if err := r.Update(parse(t, conf("enable_script_security", "", "  notify_down "+s+" nobody"))); err != nil {
		t.Fatal(err)
	}
	r = New(Options{})
	if err := r.Update(parse(t, conf("", "", "  notify_down "+s))); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.RealServer(rsKey, false)
	if got, want := l.lineT(t), fmt.Sprint(os.Geteuid()); got != want {
		t.Errorf("ran as %s, want %s", got, want)
	}
}

// TestPathSearch: a bare name is looked up in the search path.
func TestPathSearch(t *testing.T) {
	l := newLab(t)
	l.script("bare-notify", `echo "bare $1" >@FIFO@`, 0o755)
	r := New(Options{Path: "/nonexistent:" + l.dir})
	if err := r.Update(parse(t, conf("script_user root", "", `  notify_down "bare-notify x"`))); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.RealServer(rsKey, false)
	if got := l.lineT(t); got != "bare x" {
		t.Errorf("got %q", got)
	}
	r2 := New(Options{Path: "/nonexistent"})
	if err := r2.Update(parse(t, conf("script_user root", "", `  notify_down bare-notify`))); !errors.Is(err, ErrNotFound) {
		t.Errorf("not in path: %v", err)
	}
}
