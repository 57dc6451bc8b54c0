package e2e

// The fault tests of issue #9 (item 2) on real IPVS: each injects one
// fault (netem, flapping, kernel refusals, no eBPF, SIGKILL under load,
// reload storms) and asserts that the table converges to the truth and
// that nothing else changes. This file holds what they share: starting
// lvsprobe with its metrics, reading them, and watching destinations over
// netlink (an ipvsadm run costs ~100 ms of the emulated guest's CPU; a
// netlink dump a few ms).

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/ipvs"
)

// tcpService is the key of the TCP service addr:port.
func tcpService(addr string, port uint16) config.ServiceKey {
	return config.ServiceKey{Protocol: config.TCP, Addr: netip.MustParseAddr(addr), Port: port, Family: "inet"}
}

// freeLocalAddr returns a loopback address with a port free now.
func freeLocalAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runProc is an lvsprobe run started by a fault test, with its metrics
// address.
type runProc struct {
	*proc
	metrics string // host:port of /metrics
}

// startRun starts `lvsprobe run -f conf --ipvs=kernel` with its defaults
// (SYN probes, passive observer, detector), /metrics on a free loopback
// port and no control socket, plus extra flags. prefix, if any, is the
// command that runs lvsprobe (setpriv, say).
func (l *lab) startRun(conf string, prefix []string, extra ...string) *runProc {
	l.t.Helper()
	addr := freeLocalAddr(l.t)
	args := append([]string{l.lvsprobe, "run", "-f", conf, "--ipvs=kernel", "--metrics-listen=" + addr, "--control-socket="}, extra...)
	args = append(slices.Clone(prefix), args...)
	return &runProc{proc: l.start(args[0], args[1:]...), metrics: addr}
}

// scrape reads lvsprobe's /metrics: every sample by its name with labels
// as printed ("lvsprobe_ipvs_operations_total{kind=\"add_service\"}").
func scrape(ctx context.Context, addr string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	return parseMetrics(bufio.NewScanner(resp.Body))
}

// parseMetrics parses the Prometheus text format's sample lines (no
// timestamps, as lvsprobe writes them).
func parseMetrics(sc *bufio.Scanner) (map[string]float64, error) {
	m := map[string]float64{}
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			return nil, fmt.Errorf("metrics: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: line %q: %w", line, err)
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return m, nil
}

// metricsOf scrapes p's /metrics, retrying (bounded) while the endpoint
// is not up yet, and fails the test after convergeTimeout.
func (l *lab) metricsOf(p *runProc) map[string]float64 {
	l.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := scrape(ctx, p.metrics)
		cancel()
		if err == nil {
			return m
		}
		if perr := p.exited(); perr != nil {
			l.t.Fatalf("lvsprobe exited: %v\n%s", perr, p.log())
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("no metrics within %v: %v\n%s", convergeTimeout, err, p.log())
		}
		time.Sleep(pollEvery)
	}
}

// ipvsOps returns the successful IPVS writes of each kind lvsprobe counted.
func ipvsOps(m map[string]float64) map[string]float64 {
	ops := map[string]float64{}
	for k, v := range m {
		if kind, ok := strings.CutPrefix(k, `lvsprobe_ipvs_operations_total{kind="`); ok {
			ops[strings.TrimSuffix(kind, `"}`)] = v
		}
	}
	return ops
}

// destKey names a destination of a service: "198.19.0.1:80 -> 198.18.1.2:80".
func destKey(svc config.ServiceKey, d ipvs.Destination) string {
	return fmt.Sprintf("%s:%d -> %s", svc.Addr, svc.Port, netip.AddrPortFrom(d.Addr, d.Port))
}

// destWatch polls the destinations of some services over netlink in the
// background and records, per destination, every change of whether it
// serves (in the table with a weight above 0).
type destWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	serving map[string]bool      // the state of the last poll
	since   map[string]time.Time // when that state was first seen
	outs    map[string]int       // serving -> not serving transitions
	ins     map[string]int       // not serving -> serving transitions
	polls   int
	err     error
}

// watchDests starts a destWatch over svcs, polling every every, until
// stop or limit.
func watchDests(t *testing.T, svcs []config.ServiceKey, every, limit time.Duration) *destWatch {
	t.Helper()
	k, err := ipvs.NewKernel(nil)
	if err != nil {
		t.Fatalf("open IPVS: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	w := &destWatch{cancel: cancel, done: make(chan struct{}), serving: map[string]bool{},
		since: map[string]time.Time{}, outs: map[string]int{}, ins: map[string]int{}}
	first := make(chan struct{})
	go func() {
		defer close(w.done)
		defer k.Close()
		for {
			now := map[string]bool{}
			for _, svc := range svcs {
				ds, err := k.Destinations(ctx, svc)
				if err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "no such") {
					w.mu.Lock()
					w.err = err
					w.mu.Unlock()
				}
				for _, d := range ds {
					now[destKey(svc, d)] = d.Weight > 0
				}
			}
			if ctx.Err() != nil {
				return
			}
			w.record(now)
			if w.polls == 1 {
				close(first)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	select {
	case <-first:
	case <-w.done:
	}
	return w
}

// record merges one poll.
func (w *destWatch) record(now map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	t := time.Now()
	keys := map[string]bool{}
	for k := range now {
		keys[k] = true
	}
	for k := range w.serving {
		keys[k] = true
	}
	for k := range keys {
		was, is := w.serving[k], now[k]
		switch {
		case was && !is:
			w.outs[k]++
		case !was && is && w.polls > 1:
			w.ins[k]++
		}
		if was != is || w.polls == 1 {
			w.since[k] = t
		}
		w.serving[k] = is
	}
}

// state returns whether key serves now and since when.
func (w *destWatch) state(key string) (bool, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.serving[key], w.since[key]
}

// counts returns the transitions out of and into service of key.
func (w *destWatch) counts(key string) (outs, ins int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.outs[key], w.ins[key]
}

// stop ends the watch and returns the number of polls, failing the test
// on a read error.
func (w *destWatch) stop(t *testing.T) int {
	t.Helper()
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		t.Fatalf("watching IPVS: %v", w.err)
	}
	return w.polls
}

// waitServing waits until key's serving state is want (by the watch's
// polls) and returns when that state was first seen. It fails the test
// after limit, or when p exits.
func (l *lab) waitServing(w *destWatch, p *runProc, key string, want bool, limit time.Duration) time.Time {
	l.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		is, since := w.state(key)
		if is == want {
			return since
		}
		if err := p.exited(); err != nil {
			l.t.Fatalf("lvsprobe exited: %v\n%s", err, p.log())
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s serving=%t not reached within %v\n%s", key, want, limit, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tc runs tc in the director (rsIdx -1) or in the namespace of real
// server rsIdx, and fails the test on an error.
func (l *lab) tc(rsIdx int, args ...string) {
	l.t.Helper()
	if rsIdx >= 0 {
		l.rs[rsIdx].Run(l.t, "tc", args...)
		return
	}
	out, err := exec.Command("tc", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("tc %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// procRSS returns the resident set size of pid in KiB.
func procRSS(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in the status of %d", pid)
}

// runOut runs a program in the director and returns its combined output,
// failing the test on an error.
func runOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
