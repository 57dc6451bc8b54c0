package notify

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// manyServers is a configuration of n real servers under one virtual
// server, none with a script; rs lines go in every real server block.
func manyServers(n int, rs string) string {
	var b strings.Builder
	b.WriteString("virtual_server 198.18.0.1 80 {\n lb_kind NAT\n protocol TCP\n")
	for i := range n {
		fmt.Fprintf(&b, " real_server 198.18.%d.%d 80 {\n%s\n  TCP_CHECK {\n  }\n }\n", 1+i/250, 1+i%250, rs)
	}
	b.WriteString("}\n")
	return b.String()
}

// TestNoScriptsNoState: a configuration without notify scripts keeps
// nothing per real server (it cost two maps of 10,000 entries, 2.3 MB, at
// 10,000 real servers: docs/benchmarks.md §8.9), and real servers in
// their start state are not remembered either.
func TestNoScriptsNoState(t *testing.T) {
	const n = 1000
	cfg := parse(t, manyServers(n, ""))
	r := New(Options{})
	if err := r.Update(cfg); err != nil {
		t.Fatal(err)
	}
	var keys []config.RealServerKey
	for _, v := range cfg.VirtualServers {
		for _, s := range v.RealServers {
			keys = append(keys, s.Key(v))
		}
	}
	for _, k := range keys {
		r.RealServer(k, true)
	}
	if len(r.rs) != 0 || len(r.health) != 0 {
		t.Fatalf("%d real servers up, no scripts: %d entries, %d healths kept, want none", n, len(r.rs), len(r.health))
	}
	r.RealServer(keys[7], false)
	if len(r.health) != 1 {
		t.Fatalf("one real server down: %d healths kept, want 1", len(r.health))
	}
	r.RealServer(keys[7], true)
	if len(r.health) != 0 {
		t.Fatalf("back up: %d healths kept, want none", len(r.health))
	}
	// Alpha: a real server starts down, so its entry stays (its start
	// state is not the default), and an up one is remembered.
	alpha := parse(t, strings.ReplaceAll(manyServers(3, ""), "TCP_CHECK {\n", "TCP_CHECK {\n   alpha\n"))
	if err := r.Update(alpha); err != nil {
		t.Fatal(err)
	}
	if len(r.rs) != 3 {
		t.Errorf("alpha real servers: %d entries, want 3", len(r.rs))
	}
}

// TestReloadGivesScriptKnownHealth: a real server without scripts goes
// down; a reload gives it notify_up; when it comes back, notify_up runs
// (its health was remembered though it had no script). A reload that
// removes a real server forgets its health.
func TestReloadGivesScriptKnownHealth(t *testing.T) {
	l := newLab(t)
	s := l.script("n", `echo "$1" >@FIFO@`, 0o755)
	r := New(Options{})
	if err := r.Update(parse(t, conf("script_user root", "", ""))); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.RealServer(rsKey, false)
	if err := r.Update(parse(t, conf("script_user root", "", fmt.Sprintf("  notify_up \"%s up\"", s)))); err != nil {
		t.Fatal(err)
	}
	r.RealServer(rsKey, true)
	if got := l.line(); got != "up" {
		t.Errorf("got %q, want up", got)
	}
	r.RealServer(rsKey, false)
	other := config.RealServerKey{VirtualServer: rsKey.VirtualServer, Addr: netip.MustParseAddr("198.18.1.9"), Port: 80}
	if err := r.Update(parse(t, strings.Replace(conf("script_user root", "", ""), "198.18.1.1", "198.18.1.9", 1))); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	_, kept := r.health[rsKey]
	r.mu.Unlock()
	if kept {
		t.Errorf("health of %v kept after a reload removed it", rsKey)
	}
	r.RealServer(other, true)
	l.none(100 * time.Millisecond)
}
