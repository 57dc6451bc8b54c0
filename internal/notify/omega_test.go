package notify

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStopping: at shutdown with omega, notify_down of the real servers
// that are up and quorum_down run at once, bounded; a real server already
// down gets nothing; a full flush runs only quorum_down.
func TestStopping(t *testing.T) {
	l := newLab(t)
	s := l.script("ev", `echo "$*" >@FIFO@`, 0o755)
	hang := l.script("hang", `echo "hang $*" >@FIFO@; trap '' TERM; sleep 300 & wait`, 0o755)
	src := conf("script_user root", fmt.Sprintf(" quorum_down \"%s quorum down\"", s),
		fmt.Sprintf("  notify_down \"%s rs1 down\"", s))
	src = strings.Replace(src, " }\n}\n", fmt.Sprintf(" }\n real_server 198.18.1.2 80 {\n  notify_down \"%s rs2 down\"\n  TCP_CHECK {\n  }\n }\n real_server 198.18.1.3 80 {\n  notify_down \"%s rs3\"\n  TCP_CHECK {\n  }\n }\n}\n", s, hang), 1)
	cfg := parse(t, src)
	id := vsID(t, cfg)
	rs2 := rsKey
	rs2.Addr = rsKey.Addr.Next()
	read := func(n int) []string {
		t.Helper()
		var got []string
		for range n {
			got = append(got, l.line())
		}
		slices.Sort(got)
		return got
	}

	r := New(Options{Grace: 100 * time.Millisecond})
	if err := r.Update(cfg); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.RealServer(rs2, false) // down before the stop: no notify_down then
	if got, want := read(1), []string{"rs2 down"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	r.Stopping([]string{id}, true)
	if got, want := read(3), []string{"hang rs3", "quorum down", "rs1 down"}; !slices.Equal(got, want) {
		t.Fatalf("at stop: %q, want %q", got, want)
	}
	if st := r.Stats(); st.TimedOut != 1 {
		t.Errorf("the hanging script was not killed at StopTimeout: %+v", st)
	}
	l.none(100 * time.Millisecond)

	r2 := New(Options{Grace: 100 * time.Millisecond})
	if err := r2.Update(cfg); err != nil {
		t.Fatal(err)
	}
	r2.Stopping([]string{id}, false) // full flush: quorum only
	if got := read(1); !slices.Equal(got, []string{"quorum down"}) {
		t.Fatalf("full flush: %q", got)
	}
	r2.Stopping([]string{"TCP 198.18.0.9:80"}, true) // no omega VS of ours
	l.none(100 * time.Millisecond)
}

// TestInitNotifies: with rs_init_notifies, notify_up runs for the real
// servers that start alive (not those with alpha), at start and for real
// servers a reload adds, never twice.
func TestInitNotifies(t *testing.T) {
	l := newLab(t)
	s := l.script("ev", `echo "$*" >@FIFO@`, 0o755)
	rsBlock := func(addr, name string, alpha bool) string {
		a := ""
		if alpha {
			a = "   alpha\n"
		}
		return fmt.Sprintf(" real_server %s 80 {\n  notify_up \"%s %s up\"\n  TCP_CHECK {\n%s  }\n }\n", addr, s, name, a)
	}
	build := func(rss ...string) string {
		return "global_defs {\n script_user root\n rs_init_notifies\n}\nvirtual_server 198.18.0.1 80 {\n lb_kind NAT\n protocol TCP\n" +
			strings.Join(rss, "") + "}\n"
	}
	r := New(Options{})
	start(t, r)
	if err := r.Update(parse(t, build(rsBlock("198.18.1.1", "rs1", false), rsBlock("198.18.1.2", "rs2", true)))); err != nil {
		t.Fatal(err)
	}
	if got := l.line(); got != "rs1 up" {
		t.Fatalf("at start: %q, want rs1 up (rs2 has alpha)", got)
	}
	// A reload adding rs3: its notify_up only.
	if err := r.Update(parse(t, build(rsBlock("198.18.1.1", "rs1", false), rsBlock("198.18.1.2", "rs2", true), rsBlock("198.18.1.3", "rs3", false)))); err != nil {
		t.Fatal(err)
	}
	if got := l.line(); got != "rs3 up" {
		t.Fatalf("after the reload: %q, want rs3 up", got)
	}
	l.none(200 * time.Millisecond)
}
