package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// defaultControlSocket is where `lvsprobe run` answers `lvsprobe status`
// and `lvsprobe reload`: a unix socket, so only local users the file
// permissions admit (root, or the daemon's own user: the socket is 0600)
// can read the topology or trigger a reload, whatever --metrics-listen
// exposes to the network.
const defaultControlSocket = "/run/lvsprobe/lvsprobe.sock"

// controlServer serves the control socket:
//
//	GET  /status  the status document (statusDoc), also during a reload
//	              (then "reloading": true and the running configuration)
//	POST /reload  reload now: 200 with a reloadResult, 422 with the
//	              FILE:LINE errors when the file is rejected (the running
//	              configuration stays), 409 while another reload runs
type controlServer struct {
	log    *slog.Logger
	file   string
	rl     *reloader
	detect func() *detectorView // nil: no detector
}

// errorDoc is the body of an error answer.
type errorDoc struct {
	Error string `json:"error"`
}

func (c *controlServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		cfg, loadedAt := c.rl.config()
		in := statusInput{file: c.file, cfg: cfg, loadedAt: loadedAt, reloading: c.rl.reloading(), last: c.rl.lastResult(),
			sched: c.rl.sched, rec: c.rl.rec}
		if c.detect != nil {
			in.det = c.detect()
		}
		writeJSON(w, http.StatusOK, buildStatus(in))
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
		res, err := c.rl.tryReload("control")
		switch {
		case err != nil:
			writeJSON(w, http.StatusConflict, errorDoc{Error: err.Error()})
		case !res.OK:
			writeJSON(w, http.StatusUnprocessableEntity, res)
		default:
			writeJSON(w, http.StatusOK, res)
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// listenControl creates the control socket at path (and its directory,
// 0755), replacing a stale socket file left by a daemon that died but
// refusing to take over one another daemon still answers on.
func listenControl(ctx context.Context, path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		d := net.Dialer{Timeout: time.Second}
		if conn, err := d.DialContext(ctx, "unix", path); err == nil {
			_ = conn.Close()
			return nil, fmt.Errorf("control socket %s: another lvsprobe answers on it", path)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control socket %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Connecting needs write permission: under the usual umask only the
	// owner has it from the start; 0600 makes it so under any umask.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return l, nil
}

// serveControl serves the control socket at path until ctx is done. When
// it cannot be created it logs why and returns: the checks go on, without
// `lvsprobe status` and `lvsprobe reload` (SIGHUP still reloads). An
// empty path serves nothing.
func (c *controlServer) serve(ctx context.Context, path string) {
	c.serveOn(ctx, c.listen(ctx, path), path)
}

// listen creates the control socket at path, or logs why not and returns
// nil (also for an empty path). `lvsprobe run` binds it before it drops
// its capabilities.
func (c *controlServer) listen(ctx context.Context, path string) net.Listener {
	if path == "" {
		c.log.Info("control socket off (--control-socket=\"\")")
		return nil
	}
	l, err := listenControl(ctx, path)
	if err != nil {
		c.log.Error("lvsprobe status and lvsprobe reload unavailable; checks go on (SIGHUP still reloads)", "error", err)
		return nil
	}
	return l
}

// serveOn serves the control socket l (bound at path) until ctx is done;
// a nil l serves nothing.
func (c *controlServer) serveOn(ctx context.Context, l net.Listener, path string) {
	if l == nil {
		return
	}
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	c.log.Info("control socket ready", "path", path)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		c.log.Error("control socket stopped", "path", path, "error", err)
	}
}
