package prober

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// TestSchedulerWeights runs a MISC_CHECK with misc_dynamic and a
// FILE_CHECK with a weight on one real server (weight 5) through the
// scheduler and follows the effective weights it reports, as keepalived
// sums them: iweight + (status-2-iweight) + number×weight.
func TestSchedulerWeights(t *testing.T) {
	testenv.RequireProgram(t, "sh")
	dir := t.TempDir()
	code, maint := filepath.Join(dir, "code"), filepath.Join(dir, "maint")
	write := func(p, s string) { // atomically: the script and the checker read while the test writes
		t.Helper()
		if err := os.WriteFile(p+".tmp", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
	}
	write(code, "0")
	s := script(t, dir, "dyn", `exit $(cat `+code+`)`)
	conf := fmt.Sprintf(`track_file maint {
   file %s
   weight 2
}
virtual_server 198.18.255.251 80 {
   delay_loop 0.1
   lb_algo wrr
   lb_kind NAT
   protocol TCP
   real_server 198.18.255.252 80 {
      weight 5
      MISC_CHECK {
         misc_path %s
         misc_dynamic
         misc_timeout 5
      }
      FILE_CHECK {
         track_file maint
      }
   }
}
`, maint, s)
	path := filepath.Join(dir, "keepalived.conf")
	write(path, conf)
	cfg, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sched, err := NewScheduler(cfg, SchedulerOptions{StartDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	weights := make(chan int, 64)
	sched.OnWeight(func(k config.RealServerKey, w int) {
		if k.Addr.String() != "198.18.255.252" {
			t.Errorf("weight for %v", k)
		}
		weights <- w
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	defer func() { cancel(); <-done }()
	go func() {
		for range sched.Transitions() {
		}
	}()

	next := func(want int) {
		t.Helper()
		select {
		case w := <-weights:
			if w != want {
				t.Fatalf("weight %d, want %d", w, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no weight %d reported", want)
		}
	}
	write(code, "12") // misc_dynamic: weight 10
	next(10)
	write(maint, "3") // +3×2
	next(16)
	write(code, "1") // down: its weight is dropped
	next(11)
	write(code, "2") // up with weight 0: 0 + 6
	next(6)
	write(maint, "0")
	next(0)
	if h := sched.Health(); len(h) != 1 || h[0].Weight != 0 {
		t.Fatalf("health %+v, want weight 0", h)
	}
	write(code, "0") // the configured weight again
	next(5)
	select {
	case w := <-weights:
		t.Fatalf("unexpected weight %d", w)
	case <-time.After(300 * time.Millisecond): // a few more rounds at delay_loop 0.1 change nothing
	}
}
