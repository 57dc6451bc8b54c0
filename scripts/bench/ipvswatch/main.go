// Command ipvswatch prints every change of the destinations of one IPVS
// service, with the time it saw it, for the detection benchmark
// (scripts/bench/detect). It polls the kernel's table over generic
// netlink every --interval; a destination counts as in the table when
// its weight is above 0 (inhibit_on_failure keeps failed ones at 0).
//
// Output, one line per change: UNIX_MS +|- ADDR:PORT. The first poll
// prints every destination present. It runs until killed.
//
//	ipvswatch -vip 198.18.250.200:80 -interval 2ms >watch.log
//
// With -wait, it instead reads such a log as it grows and prints how many
// milliseconds after -since the first line with that sign and -dest
// appeared (a shell loop of greps is too slow in an emulated guest), or
// exits 1 after -timeout.
//
//	ipvswatch -wait - -dest 198.18.0.2:40000 -since 1795655841482 -timeout 90s watch.log
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/ipvs"
)

func main() {
	vip := flag.String("vip", "", "the TCP service to watch, ADDR:PORT")
	every := flag.Duration("interval", 2*time.Millisecond, "poll interval")
	sign := flag.String("wait", "", "read the log given as argument and wait for a line with this sign (+ or -)")
	dest := flag.String("dest", "", "with -wait: the destination ADDR:PORT")
	since := flag.Int64("since", 0, "with -wait: unix ms; earlier lines do not count")
	limit := flag.Duration("timeout", 90*time.Second, "with -wait: give up after this long")
	flag.Parse()
	if *sign != "" {
		ms, err := waitLine(flag.Arg(0), *sign+" "+*dest, *since, *limit)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ipvswatch:", err)
			os.Exit(1)
		}
		fmt.Println(ms - *since)
		return
	}
	ap, err := netip.ParseAddrPort(*vip)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipvswatch: -vip:", err)
		os.Exit(2)
	}
	if err := watch(ap, *every); err != nil {
		fmt.Fprintln(os.Stderr, "ipvswatch:", err)
		os.Exit(1)
	}
}

// waitLine rereads the log at path every 5 ms until a line "MS WHAT" with
// MS >= since appears, and returns its MS.
func waitLine(path, what string, since int64, limit time.Duration) (int64, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			ms, rest, ok := strings.Cut(l, " ")
			if !ok || rest != what {
				continue
			}
			if v, err := strconv.ParseInt(ms, 10, 64); err == nil && v >= since {
				return v, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no %q in %s within %v", what, path, limit)
}

// watch polls svc until SIGTERM or SIGINT.
func watch(ap netip.AddrPort, every time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	k, err := ipvs.NewKernel(nil)
	if err != nil {
		return fmt.Errorf("open ipvs: %w", err)
	}
	defer k.Close()
	svc := config.ServiceKey{Protocol: config.TCP, Addr: ap.Addr(), Port: ap.Port(), Family: "inet"}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	in := map[netip.AddrPort]bool{}
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		ds, err := k.Destinations(ctx, svc)
		now := time.Now().UnixMilli()
		if err == nil {
			seen := map[netip.AddrPort]bool{}
			for _, d := range ds {
				if d.Weight > 0 {
					seen[netip.AddrPortFrom(d.Addr, d.Port)] = true
				}
			}
			for a := range seen {
				if !in[a] {
					fmt.Fprintf(out, "%d + %s\n", now, a)
				}
			}
			for a := range in {
				if !seen[a] {
					fmt.Fprintf(out, "%d - %s\n", now, a)
				}
			}
			in = seen
			out.Flush()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
	}
}
