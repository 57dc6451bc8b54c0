//go:build linux

// Command responder attaches the benchmark's stateless SYN-ACK responder
// (bpf/benchresp.c, internal/testnet's Responder) to the ingress of a link
// in the current network namespace and keeps it there until SIGTERM or
// SIGINT, then prints its counters. scripts/bench/scale runs it on the real
// servers' end of its veth (LVSPROBE_BENCH_SERVERS=responder) to stand in
// for real servers on other machines. Needs Linux 6.6 (TCX) and root.
//
// usage: responder -dev DEV -range ADDR:FIRST-LAST [-range …]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// rangesFlag collects -range values.
type rangesFlag []testnet.ResponderRange

func (r *rangesFlag) String() string { return fmt.Sprint(*r) }

func (r *rangesFlag) Set(s string) error {
	rr, err := parseRange(s)
	if err != nil {
		return err
	}
	*r = append(*r, rr)
	return nil
}

// parseRange parses ADDR:FIRST-LAST (or ADDR:PORT).
func parseRange(s string) (testnet.ResponderRange, error) {
	host, ports, ok := strings.Cut(s, ":")
	if !ok {
		return testnet.ResponderRange{}, fmt.Errorf("range %q: want ADDR:FIRST-LAST", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return testnet.ResponderRange{}, fmt.Errorf("range %q: want an IPv4 address", s)
	}
	lo, hi, found := strings.Cut(ports, "-")
	if !found {
		hi = lo
	}
	first, err1 := strconv.ParseUint(lo, 10, 16)
	last, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || first > last {
		return testnet.ResponderRange{}, fmt.Errorf("range %q: want ports FIRST-LAST, FIRST <= LAST", s)
	}
	return testnet.ResponderRange{Addr: a, First: uint16(first), Last: uint16(last)}, nil
}

func main() {
	var ranges rangesFlag
	dev := flag.String("dev", "", "the link whose ingress gets the responder")
	flag.Var(&ranges, "range", "ADDR:FIRST-LAST answered (repeatable, up to 16)")
	flag.Parse()
	if err := run(*dev, ranges); err != nil {
		slog.Error("responder failed", "error", err)
		os.Exit(1)
	}
}

func run(dev string, ranges []testnet.ResponderRange) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		return fmt.Errorf("find link %q: %w", dev, err)
	}
	r, err := testnet.AttachResponder(ifc.Index, ranges)
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Println("responder ready")
	<-ctx.Done()
	s, err := r.Stats()
	if err != nil {
		return err
	}
	fmt.Printf("responder-synacks %d responder-dropped %d responder-odd %d\n", s.SynAcks, s.Dropped, s.Odd)
	return nil
}
