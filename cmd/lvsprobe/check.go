package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// defaultConfigPath is where keepalived reads its configuration.
const defaultConfigPath = "/etc/keepalived/keepalived.conf"

func init() {
	register(command{name: "check", summary: "validate the LVS part of a keepalived.conf (--dump prints it as JSON)", run: cmdCheck})
}

// dumpOutput is what `check --dump` prints.
type dumpOutput struct {
	Files          []string                              `json:"files"`
	Global         config.Global                         `json:"global"`
	Groups         map[string]*config.VirtualServerGroup `json:"groups,omitempty"`
	VirtualServers []*config.VirtualServer               `json:"virtual_servers"`
	Warnings       []string                              `json:"warnings,omitempty"`
}

func cmdCheck(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	file := fs.String("f", defaultConfigPath, "keepalived configuration `file`")
	id := fs.String("config-id", "", "configuration `id` selecting @ID lines, as keepalived -i (default: the short host name)")
	dump := fs.Bool("dump", false, "print the resolved topology as JSON")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: lvsprobe check [-f FILE] [--config-id ID] [--dump]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return &exitError{code: 2}
	}
	cfg, err := config.Load(*file, config.LoadOptions{ConfigID: *id, Log: e.log})
	if err != nil {
		var ce *config.Error
		if !errors.As(err, &ce) {
			return fmt.Errorf("load %s: %w", *file, err)
		}
		for _, d := range ce.Diagnostics {
			fmt.Fprintln(e.stderr, d.String())
		}
		fmt.Fprintf(e.stderr, "%s: invalid: %d error(s)\n", *file, len(ce.Diagnostics))
		return &exitError{code: 1}
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(e.stderr, "%s: warning: %s\n", w.Pos, w.Msg)
	}
	if !*dump {
		fmt.Fprintf(e.stdout, "%s: valid: %d virtual servers, %d real servers\n", *file, len(cfg.VirtualServers), countRS(cfg))
		return nil
	}
	out := dumpOutput{Files: cfg.Files, Global: cfg.Global, Groups: cfg.Groups, VirtualServers: cfg.VirtualServers}
	for _, w := range cfg.Warnings {
		out.Warnings = append(out.Warnings, w.String())
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write dump: %w", err)
	}
	return nil
}

func countRS(cfg *config.Config) int {
	n := 0
	for _, vs := range cfg.VirtualServers {
		n += len(vs.RealServers)
	}
	return n
}
