package prober

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// TestSchedulerKeepalivedCheckers loads a keepalived.conf whose real
// server has a UDP_CHECK, a PING_CHECK, a FILE_CHECK and a MISC_CHECK,
// runs the scheduler against a real namespace, and follows the
// transitions as the tracked file and the script's verdict change.
func TestSchedulerKeepalivedCheckers(t *testing.T) {
	testenv.RequireProgram(t, "sh")
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	startUDPEcho(t, rs, 5300)
	dir := t.TempDir()
	maint, flag := filepath.Join(dir, "maint"), filepath.Join(dir, "flag")
	s := script(t, dir, "check", `[ "$1" = "`+rs.Addr.String()+`" ] && [ ! -e `+flag+` ]`)
	conf := fmt.Sprintf(`track_file maint {
   file %s
}
virtual_server 198.18.255.250 5300 {
   delay_loop 0.2
   lb_algo rr
   lb_kind DR
   protocol UDP
   real_server %s 5300 {
      UDP_CHECK {
         require_reply
         connect_timeout 1
      }
      PING_CHECK {
         connect_timeout 1
      }
      FILE_CHECK {
         track_file maint
         weight 0
      }
      MISC_CHECK {
         misc_path "%s %s"
         misc_timeout 2
      }
   }
}
`, maint, rs.Addr, s, rs.Addr)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setPingGroupRange(t, "0 2147483647")
	sched, err := NewScheduler(cfg, SchedulerOptions{StartDelay: -1, FirstVerdict: true})
	if err != nil {
		t.Fatal(err)
	}
	if st := sched.Stats(); st.Checks != 4 {
		t.Fatalf("%d checks, want 4", st.Checks)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	defer func() { cancel(); <-done }()

	next := func(up bool, reason string) {
		t.Helper()
		select {
		case tr := <-sched.Transitions():
			if tr.Up != up || !strings.Contains(tr.Reason, reason) {
				t.Fatalf("transition up=%v %q, want up=%v with %q", tr.Up, tr.Reason, up, reason)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no transition to up=%v (%s)", up, reason)
		}
	}
	next(true, "first verdict")
	if err := os.WriteFile(maint, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	next(false, "FILE_CHECK maint")
	if err := os.WriteFile(maint, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	next(true, "FILE_CHECK maint")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	next(false, "MISC_CHECK "+s)
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	next(true, "MISC_CHECK "+s)
}
