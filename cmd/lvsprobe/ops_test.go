package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// metricFamilies are the families the daemon must export: one per
// requirement of the metrics reference (docs/metrics.md).
var metricFamilies = []string{
	"lvsprobe_build_info",
	"lvsprobe_real_server_up",
	"lvsprobe_ipvs_destination_weight",
	"lvsprobe_check_duration_seconds",
	"lvsprobe_ipvs_operations_total",
	"lvsprobe_ipvs_errors_total",
	"lvsprobe_config_last_reload_successful",
	"lvsprobe_config_last_reload_success_timestamp_seconds",
	"lvsprobe_config_reloads_total",
	"lvsprobe_scheduler_heartbeat_timestamp_seconds",
	"process_cpu_seconds_total",
}

// TestMetricsPromtool runs the daemon against two nginx real servers,
// waits for their checks to pass, and feeds the exposition of /metrics to
// `promtool check metrics`, which must find nothing to say.
func TestMetricsPromtool(t *testing.T) {
	promtool := testenv.RequireProgram(t, "promtool")
	rss, conf := opsLab(t, 2)
	d := startDaemon(t, conf, freePort(t))
	ctx := t.Context()
	var expo string
	waitFor(t, 30*time.Second, "both real servers up in the metrics", func() (bool, string) {
		d.alive(t)
		var err error
		if expo, err = d.scrape(ctx); err != nil {
			return false, err.Error()
		}
		for _, rs := range rss {
			v, ok := sample(expo, fmt.Sprintf(`lvsprobe_real_server_up{local_address="198.18.250.1",local_mark="",local_port="80",proto="TCP",remote_address="%s",remote_port="80"}`, rs.Addr))
			if !ok || v != 1 {
				return false, "real server " + rs.Addr.String() + " not up"
			}
		}
		n, _ := sample(expo, `lvsprobe_check_duration_seconds_count{result="success",type="HTTP_GET"}`)
		return n >= 2, fmt.Sprintf("%v successful HTTP_GET attempts", n)
	})
	for _, f := range metricFamilies {
		if !strings.Contains(expo, "\n# TYPE "+f+" ") {
			t.Errorf("no %s in the exposition", f)
		}
	}
	documented := documentedMetrics(t)
	for _, l := range strings.Split(expo, "\n") {
		if f, ok := strings.CutPrefix(l, "# TYPE lvsprobe_"); ok {
			name, typ := "lvsprobe_"+strings.Fields(f)[0], strings.Fields(f)[1]
			switch doc, ok := documented[name]; {
			case !ok:
				t.Errorf("%s is exported but not in docs/metrics.md: add its collector to docRegistry (metricsdoc_test.go) and run make metrics-doc", name)
			case doc != typ:
				t.Errorf("%s is a %s, docs/metrics.md says %s: fix conventionalType (metricsdoc_test.go)", name, typ, doc)
			}
		}
	}
	hb, _ := sample(expo, "lvsprobe_scheduler_heartbeat_timestamp_seconds")
	if age := time.Since(time.Unix(0, int64(hb*1e9))); age > 10*time.Second || age < -time.Second {
		t.Errorf("heartbeat %v old", age)
	}
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(expo)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestPrometheusScrapes starts a real Prometheus server on loopback that
// scrapes the daemon every second, and reads lvsprobe's series back
// through its query API.
func TestPrometheusScrapes(t *testing.T) {
	prom := testenv.RequireProgram(t, "prometheus")
	rss, conf := opsLab(t, 2)
	d := startDaemon(t, conf, freePort(t))

	dir := t.TempDir()
	promAddr := freePort(t)
	promConf := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promConf, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: lvsprobe
    static_configs:
      - targets: ['%s']
`, d.metrics))
	ctx := t.Context()
	cmd := exec.CommandContext(ctx, prom, "--config.file="+promConf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	var promLog lockedBuffer
	cmd.Stdout, cmd.Stderr = &promLog, &promLog
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	promDone := make(chan error, 1)
	go func() { promDone <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-promDone:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-promDone
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	})

	// query runs an instant query and returns its vector result.
	query := func(q string) ([]promSample, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+promAddr+"/api/v1/query?query="+url.QueryEscape(q), nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var r promResponse
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return nil, fmt.Errorf("decode query answer: %w", err)
		}
		if r.Status != "success" {
			return nil, fmt.Errorf("query %q: %s %s", q, r.Status, r.Error)
		}
		return r.Data.Result, nil
	}
	waitFor(t, 60*time.Second, "Prometheus to hold both real servers up", func() (bool, string) {
		d.alive(t)
		select {
		case err := <-promDone:
			promDone <- err
			t.Fatalf("prometheus exited: %v\n%s", err, promLog.String())
		default:
		}
		res, err := query(`lvsprobe_real_server_up{job="lvsprobe"} == 1`)
		if err != nil {
			return false, err.Error()
		}
		got := map[string]bool{}
		for _, s := range res {
			got[s.Metric["remote_address"]] = true
		}
		for _, rs := range rss {
			if !got[rs.Addr.String()] {
				return false, fmt.Sprintf("%d series: %v", len(res), got)
			}
		}
		return true, ""
	})
	res, err := query(`lvsprobe_build_info`)
	if err != nil || len(res) != 1 || res[0].Metric["version"] == "" {
		t.Fatalf("lvsprobe_build_info: %v %+v", err, res)
	}
	res, err = query(`up{job="lvsprobe"}`)
	if err != nil || len(res) != 1 || res[0].Value[1] != "1" {
		t.Fatalf("up: %v %+v", err, res)
	}
}

// promResponse is the part of the Prometheus query API's answer the test
// reads.
type promResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		Result []promSample `json:"result"`
	} `json:"data"`
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// TestReloadProcess drives reloads of a running daemon with the real
// `lvsprobe reload` client: a change to one check restarts that check
// only; a broken file is rejected with its FILE:LINE errors while the
// running configuration stays, in the status and in the metrics.
func TestReloadProcess(t *testing.T) {
	rss, conf := opsLab(t, 2)
	d := startDaemon(t, conf, freePort(t))
	ctx := t.Context()
	waitFor(t, 30*time.Second, "both real servers up", func() (bool, string) {
		d.alive(t)
		st, err := d.status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return allUp(st, 2)
	})

	// Change the URL of the second real server's check only.
	writeFile(t, conf, opsConf(rss, func(i int) string { return map[int]string{0: "/health.txt", 1: "/other.txt"}[i] }))
	out, err := lvsprobeCmd(t, ctx, "reload", "--socket", d.socket).CombinedOutput()
	if err != nil {
		t.Fatalf("lvsprobe reload: %v\n%s", err, out)
	}
	if want := "reloaded: 2 checks, 1 new or changed (not yet run)"; !strings.Contains(string(out), want) {
		t.Fatalf("lvsprobe reload said %q, want %q", out, want)
	}
	st, err := d.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := st.Services[0].RealServers[0]
	if kept.State != "up" || kept.Checks[0].State != "up" || kept.LastCheck.IsZero() {
		t.Errorf("the unchanged check did not keep its state: %s", mustJSON(kept))
	}
	if r := st.LastReload; r == nil || !r.OK || r.Trigger != "control" {
		t.Errorf("last_reload = %s", mustJSON(r))
	}
	waitFor(t, 30*time.Second, "the changed check to pass", func() (bool, string) {
		st, err := d.status(ctx)
		if err != nil {
			return false, err.Error()
		}
		c := st.Services[0].RealServers[1].Checks[0]
		return c.State == "up", mustJSON(c)
	})

	// A broken file: rejected with FILE:LINE, the running one stays.
	good := opsConf(rss, func(int) string { return "/health.txt" })
	bad := strings.Replace(good, "weight 2", "weight two", 1)
	writeFile(t, conf, bad)
	var stderr bytes.Buffer
	cmd := lvsprobeCmd(t, ctx, "reload", "--socket", d.socket)
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !asExit(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("lvsprobe reload of a broken file: %v, want exit 1\n%s", err, stderr.String())
	}
	line := strings.Count(bad[:strings.Index(bad, "weight two")], "\n") + 1
	if want := fmt.Sprintf("%s:%d: ", conf, line); !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr %q does not name %s", stderr.String(), want)
	}
	d.alive(t)
	st, err = d.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, states := allUp(st, 2); !ok {
		t.Errorf("after a rejected reload: %s", states)
	}
	if r := st.LastReload; r == nil || r.OK || len(r.Errors) == 0 {
		t.Errorf("last_reload = %s", mustJSON(r))
	}
	expo, err := d.scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := sample(expo, "lvsprobe_config_last_reload_successful"); !ok || v != 0 {
		t.Errorf("lvsprobe_config_last_reload_successful = %v (present %v), want 0", v, ok)
	}
	if v, _ := sample(expo, `lvsprobe_config_reloads_total{result="failure"}`); v != 1 {
		t.Errorf(`lvsprobe_config_reloads_total{result="failure"} = %v, want 1`, v)
	}

	// SIGHUP with the file fixed: the same reload, reported as such.
	writeFile(t, conf, good)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the SIGHUP reload", func() (bool, string) {
		st, err := d.status(ctx)
		if err != nil {
			return false, err.Error()
		}
		r := st.LastReload
		return r != nil && r.OK && r.Trigger == "SIGHUP", mustJSON(r)
	})
	expo, err = d.scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := sample(expo, "lvsprobe_config_last_reload_successful"); v != 1 {
		t.Errorf("lvsprobe_config_last_reload_successful = %v after the SIGHUP reload, want 1", v)
	}
	writeFile(t, conf, bad)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the rejected SIGHUP reload", func() (bool, string) {
		st, err := d.status(ctx)
		if err != nil {
			return false, err.Error()
		}
		r := st.LastReload
		return r != nil && !r.OK && r.Trigger == "SIGHUP", mustJSON(r)
	})

	// `lvsprobe status` renders the rejection for the operator.
	out, err = lvsprobeCmd(t, ctx, "status", "--socket", d.socket).Output()
	if err != nil {
		t.Fatalf("lvsprobe status: %v", err)
	}
	for _, want := range []string{"LAST RELOAD REJECTED", fmt.Sprintf("%s:%d:", conf, line), "TCP 198.18.250.1:80", "-> " + rss[1].Addr.String() + ":80"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lvsprobe status lacks %q:\n%s", want, out)
		}
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

// TestMetricsPortInUse starts the daemon on a metrics address another
// socket holds: it says which address, and runs its checks anyway.
func TestMetricsPortInUse(t *testing.T) {
	_, conf := opsLab(t, 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := startDaemon(t, conf, l.Addr().String())
	ctx := t.Context()
	waitFor(t, 30*time.Second, "the real server up despite the metrics port", func() (bool, string) {
		d.alive(t)
		st, err := d.status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return allUp(st, 1)
	})
	if want := "cannot listen on " + l.Addr().String(); !strings.Contains(d.stderr.String(), want) {
		t.Fatalf("no %q in the log:\n%s", want, d.stderr.String())
	}
}
