// Command lvsprobe is the health-checking half of an LVS director: it reads
// the virtual_server blocks of a keepalived.conf, checks every real server
// with keepalived's semantics and keeps the kernel's IPVS table in step.
//
// Usage: lvsprobe COMMAND [flags]; `lvsprobe help` lists the commands.
// The eBPF fast path needs Linux 5.8 or newer with BTF; without it lvsprobe
// runs active checks only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// env is what a command may touch: its output streams and a logger.
type env struct {
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// dropCaps: `lvsprobe run` drops the capabilities it no longer
	// needs after start-up (privileges.go). Only main sets it: tests
	// that call run in their own process keep theirs.
	dropCaps bool
}

// command is one subcommand of lvsprobe.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands = map[string]command{}

// register adds a subcommand; each command's file calls it from init.
func register(c command) { commands[c.name] = c }

// exitError carries an exit code other than 1 (or 1 without a message).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdout: os.Stdout, stderr: os.Stderr,
		log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})), dropCaps: true}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches args to a subcommand and returns the process exit code.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "lvsprobe: unknown command %q\n", args[0])
		usage(e.stderr)
		return 2
	}
	err := c.run(ctx, e, args[1:])
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(e.stderr, "lvsprobe %s: %s\n", c.name, ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintf(e.stderr, "lvsprobe %s: %v\n", c.name, err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: lvsprobe COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'lvsprobe COMMAND -h' for a command's flags.")
}

// parseArgs parses a command's args into fs, which takes no positional
// arguments. stop is true when the command should return err at once:
// nil after -h (usage printed, exit 0), an exit status 2 for a bad flag
// or a stray argument (usage printed).
func parseArgs(fs *flag.FlagSet, args []string) (stop bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return true, &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return true, &exitError{code: 2}
	}
	return false, nil
}
