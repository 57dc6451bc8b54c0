package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

func init() {
	register(command{name: "status", summary: "show the running daemon's real servers, like ipvsadm -Ln plus health (--json)", run: cmdStatus})
	register(command{name: "reload", summary: "make the running daemon reload its configuration (as SIGHUP), printing FILE:LINE errors", run: cmdReload})
}

// controlTimeout bounds a status or reload request (a reload builds every
// checker of the new file).
const controlTimeout = 60 * time.Second

// controlRequest sends one request to the daemon's control socket.
func controlRequest(ctx context.Context, socket, method, path string) (*http.Response, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	req, err := http.NewRequestWithContext(ctx, method, "http://lvsprobe"+path, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("no lvsprobe answers on %s (is `lvsprobe run` running, with this --control-socket?): %w", socket, err)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose cancels a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error { err := c.ReadCloser.Close(); c.cancel(); return err }

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	socket := fs.String("socket", defaultControlSocket, "the daemon's control socket `path` (lvsprobe run --control-socket)")
	asJSON := fs.Bool("json", false, "print the status document as JSON")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: lvsprobe status [--socket PATH] [--json]")
		fs.PrintDefaults()
	}
	if stop, err := parseArgs(fs, args); stop {
		return err
	}
	resp, err := controlRequest(ctx, *socket, http.MethodGet, "/status")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %s", errorBody(resp))
	}
	d, err := decodeStatus(resp.Body)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	return renderStatus(e.stdout, d)
}

func cmdReload(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	socket := fs.String("socket", defaultControlSocket, "the daemon's control socket `path` (lvsprobe run --control-socket)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: lvsprobe reload [--socket PATH]")
		fs.PrintDefaults()
	}
	if stop, err := parseArgs(fs, args); stop {
		return err
	}
	resp, err := controlRequest(ctx, *socket, http.MethodPost, "/reload")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusUnprocessableEntity:
	default:
		return fmt.Errorf("reload: %s", errorBody(resp))
	}
	var res reloadResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(&res); err != nil {
		return fmt.Errorf("reload: decode the answer: %w", err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	if !res.OK {
		for _, l := range res.Errors {
			fmt.Fprintln(e.stderr, l)
		}
		return &exitError{code: 1, msg: fmt.Sprintf("configuration rejected (%d error(s)); the running configuration stays", len(res.Errors))}
	}
	_, err = fmt.Fprintf(e.stdout, "reloaded: %d checks, %d new or changed (not yet run)\n", res.Checks, res.Pending)
	return err
}

// errorBody is the message of an error answer.
func errorBody(resp *http.Response) string {
	var d errorDoc
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &d) == nil && d.Error != "" {
		return d.Error
	}
	return resp.Status + ": " + strings.TrimSpace(string(b))
}

// age renders how long before now t was, "-" for the zero time.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s ago"
	case d < time.Second:
		return d.Round(time.Millisecond).String() + " ago"
	}
	return d.Round(100*time.Millisecond).String() + " ago"
}

// seconds renders a latency.
func seconds(s float64) string {
	if s <= 0 {
		return "-"
	}
	return time.Duration(s * float64(time.Second)).Round(10 * time.Microsecond).String()
}

// renderStatus writes the operator's table: ipvsadm -Ln's layout with
// each real server's state, last check, latency, flap penalty and reason.
func renderStatus(w io.Writer, d *statusDoc) error {
	var b strings.Builder
	fmt.Fprintf(&b, "lvsprobe %s, pid %d, config %s (loaded %s)", d.Version, d.PID, d.Config, age(d.Now, d.ConfigLoadedAt))
	if d.Detector != "" {
		fmt.Fprintf(&b, ", detector %s", d.Detector)
	}
	fmt.Fprintf(&b, "\ncheck loop heartbeat %s\n", age(d.Now, d.Heartbeat))
	if d.Reloading {
		b.WriteString("RELOAD IN PROGRESS: showing the configuration running until it ends\n")
	}
	if r := d.LastReload; r != nil && !r.OK {
		fmt.Fprintf(&b, "LAST RELOAD REJECTED (%s, %s); the configuration above still runs:\n", r.Trigger, age(d.Now, r.At))
		for _, l := range r.Errors {
			b.WriteString("  " + oneLine(l) + "\n")
		}
	}
	b.WriteByte('\n')
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Prot LocalAddress:Port\tScheduler\tQuorum\t\t\t\t\t\t")
	fmt.Fprintln(tw, "  -> RemoteAddress:Port\tForward\tWeight\tIPVS\tState\tLast check\tLatency\tPenalty\tReason")
	for _, s := range d.Services {
		sched := s.Scheduler
		if s.Persistence > 0 {
			sched += " persistent " + strconv.FormatUint(uint64(s.Persistence), 10)
		}
		q := "-"
		if s.QuorumUp != nil {
			q = "up"
			if !*s.QuorumUp {
				q = "LOST"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\t\t\n", s.Service, sched, q)
		for _, rs := range s.RealServers {
			ipvsW := "out"
			if rs.IPVSWeight != nil {
				ipvsW = strconv.Itoa(*rs.IPVSWeight)
			}
			pen := "-"
			if rs.FlapPenalty != nil {
				pen = strconv.FormatFloat(*rs.FlapPenalty, 'f', 2, 64)
			}
			state := rs.State
			if rs.DetectorState != "" && rs.DetectorState != rs.State {
				state += " (" + rs.DetectorState + ")"
			}
			fmt.Fprintf(tw, "  -> %s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", rs.Address, rs.Forward, rs.Weight, ipvsW, state,
				age(d.Now, rs.LastCheck), seconds(rs.Latency), pen, oneLine(rs.Reason))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

// oneLine keeps a reason on one table row.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) { // C0, DEL and C1 (U+009B is a terminal's CSI)
			return ' '
		}
		return r
	}, s)
	const maxLen = 120
	if r := []rune(s); len(r) > maxLen {
		s = string(r[:maxLen]) + "…"
	}
	return s
}
