package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// table is a normalized IPVS table: one line per service ("TCP
// 198.19.0.1:80 wrr persistent 300"), each followed by its destinations
// ("  -> 198.18.1.2:80 Masq 3 0 0": address, method, weight, upper and
// lower threshold), services and destinations sorted, connection counters
// dropped. Two tables are equal when their lines are.
type table []string

// String returns the table one line per line.
func (t table) String() string { return strings.Join(t, "\n") }

// parseTable parses the outputs of `ipvsadm -Ln` (ln) and `ipvsadm -Ln
// --thresholds` (thr) of the same table: the first gives each
// destination's method and weight, the second its thresholds, line for
// line. An empty thr means thresholds of 0.
func parseTable(ln, thr string) (table, error) {
	type svc struct {
		line  string
		dests []string
	}
	lnLines := strings.Split(ln, "\n")
	var thrLines []string
	if thr != "" {
		thrLines = strings.Split(thr, "\n")
		if len(thrLines) != len(lnLines) {
			return nil, fmt.Errorf("%d lines with thresholds, %d without", len(thrLines), len(lnLines))
		}
	}
	var svcs []*svc
	for n, raw := range lnLines {
		f := strings.Fields(raw)
		switch {
		case len(f) == 0:
		case f[0] == "IP" || f[0] == "Prot" || (f[0] == "->" && len(f) > 1 && f[1] == "RemoteAddress:Port"):
			// headers
		case f[0] == "->":
			// -> addr:port Forward Weight ActiveConn InActConn
			if len(svcs) == 0 {
				return nil, fmt.Errorf("line %d: destination before any service", n+1)
			}
			if len(f) < 4 {
				return nil, fmt.Errorf("line %d: short destination %q", n+1, raw)
			}
			u, l := "0", "0"
			if thrLines != nil {
				// -> addr:port Uthreshold Lthreshold ActiveConn InActConn
				g := strings.Fields(thrLines[n])
				if len(g) < 4 || g[0] != "->" || g[1] != f[1] {
					return nil, fmt.Errorf("line %d: %q has no thresholds in %q", n+1, raw, thrLines[n])
				}
				u, l = g[2], g[3]
			}
			s := svcs[len(svcs)-1]
			s.dests = append(s.dests, "  -> "+strings.Join(append(f[1:4:4], u, l), " "))
		case f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP" || f[0] == "FWM":
			if len(f) < 3 {
				return nil, fmt.Errorf("line %d: short service %q", n+1, raw)
			}
			svcs = append(svcs, &svc{line: strings.Join(f, " ")})
		default:
			return nil, fmt.Errorf("line %d: unexpected %q", n+1, raw)
		}
	}
	slices.SortFunc(svcs, func(a, b *svc) int { return strings.Compare(a.line, b.line) })
	var t table
	for _, s := range svcs {
		slices.Sort(s.dests)
		t = append(t, s.line)
		t = append(t, s.dests...)
	}
	return t, nil
}

// printTable prints normalized table lines back as the two ipvsadm
// outputs parseTable reads (connection counters 0).
func printTable(lines []string) (ln, thr string) {
	var b, c strings.Builder
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 6 && f[0] == "->" {
			fmt.Fprintf(&b, "  -> %s %s %s 0 0\n", f[1], f[2], f[3])
			fmt.Fprintf(&c, "  -> %s %s %s 0 0\n", f[1], f[4], f[5])
			continue
		}
		b.WriteString(l + "\n")
		c.WriteString(l + "\n")
	}
	return b.String(), c.String()
}

// service returns the lines of t for the service whose line starts with
// prefix (its line and its destinations), or nil.
func (t table) service(prefix string) table {
	for i, l := range t {
		if strings.HasPrefix(l, prefix) {
			j := i + 1
			for j < len(t) && strings.HasPrefix(t[j], "  ->") {
				j++
			}
			return t[i:j]
		}
	}
	return nil
}

func TestParseTable(t *testing.T) {
	const header = "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n"
	const hdrLn = "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
	const hdrThr = "  -> RemoteAddress:Port           Uthreshold Lthreshold ActiveConn InActConn\n"
	for _, tc := range []struct {
		name, ln, thr string
		want          table
		err           bool
	}{
		{name: "empty", ln: header + hdrLn, thr: header + hdrThr},
		{
			name: "sorted",
			ln: header + hdrLn +
				"UDP  198.19.0.2:53 sh (flag-1,flag-2) ops\n" +
				"  -> 198.18.2.2:53                 Route   2      0          0\n" +
				"TCP  198.19.0.1:80 wrr persistent 300 mask 255.255.255.0\n" +
				"  -> 198.18.2.2:80                 Masq    1      5          7\n" +
				"  -> 198.18.1.2:80                 Masq    3      0          0\n" +
				"FWM  7 rr\n",
			thr: header + hdrThr +
				"UDP  198.19.0.2:53 sh (flag-1,flag-2) ops\n" +
				"  -> 198.18.2.2:53                 0          0          0          0\n" +
				"TCP  198.19.0.1:80 wrr persistent 300 mask 255.255.255.0\n" +
				"  -> 198.18.2.2:80                 10         2          5          7\n" +
				"  -> 198.18.1.2:80                 0          0          0          0\n" +
				"FWM  7 rr\n",
			want: table{
				"FWM 7 rr",
				"TCP 198.19.0.1:80 wrr persistent 300 mask 255.255.255.0",
				"  -> 198.18.1.2:80 Masq 3 0 0",
				"  -> 198.18.2.2:80 Masq 1 10 2",
				"UDP 198.19.0.2:53 sh (flag-1,flag-2) ops",
				"  -> 198.18.2.2:53 Route 2 0 0",
			},
		},
		{name: "no thresholds", ln: "TCP 198.19.0.1:80 rr\n  -> 198.18.1.2:80 Masq 1 0 0\n", want: table{"TCP 198.19.0.1:80 rr", "  -> 198.18.1.2:80 Masq 1 0 0"}},
		{name: "thresholds of another line", ln: "TCP 198.19.0.1:80 rr\n  -> 198.18.1.2:80 Masq 1 0 0\n", thr: "TCP 198.19.0.1:80 rr\n  -> 198.18.1.3:80 1 0 0 0\n", err: true},
		{name: "line counts differ", ln: "TCP 198.19.0.1:80 rr\n", thr: "\n\n", err: true},
		{name: "orphan destination", ln: "  -> 198.18.1.2:80 Masq 1 0 0\n", err: true},
		{name: "short destination", ln: "TCP 198.19.0.1:80 rr\n  -> 198.18.1.2:80 Masq\n", err: true},
		{name: "garbage", ln: "hello world\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTable(tc.ln, tc.thr)
			if (err != nil) != tc.err {
				t.Fatalf("parseTable err = %v, want error %v", err, tc.err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("parseTable:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// FuzzParseTable checks that parsing never panics and that a parsed table
// printed back (see printTable) parses to itself.
func FuzzParseTable(f *testing.F) {
	f.Add("TCP  198.19.0.1:80 wrr\n  -> 198.18.1.2:80 Masq 3 0 0\n", "TCP  198.19.0.1:80 wrr\n  -> 198.18.1.2:80 5 1 0 0\n")
	f.Add("FWM  7 rr\nUDP [2001:db8::1]:53 sh\n", "")
	f.Fuzz(func(t *testing.T, ln, thr string) {
		tb, err := parseTable(ln, thr)
		if err != nil {
			return
		}
		again, err := parseTable(printTable(tb))
		if err != nil || !slices.Equal(again, tb) {
			t.Fatalf("round trip of %q, %q: %v\n%s\nwant\n%s", ln, thr, err, again, tb)
		}
	})
}
