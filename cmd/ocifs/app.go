package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ocifs/ocifs/cache"
	"github.com/urfave/cli/v2"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

// run executes the CLI and returns the process exit code. It is the only
// place that turns an error into a message and an exit code.
func run(args []string, stderr io.Writer) int {
	// SIGHUP too: a closed terminal or SSH session stops a build as
	// Ctrl-C does, cleaning up after itself; unless it is ignored (nohup),
	// which catching it would undo.
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	app := newApp(stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil {
		err = interrupted()
	}
	return report(stderr, err)
}

func newApp(stderr io.Writer) *cli.App {
	return &cli.App{
		Name:                 "ocifs",
		Usage:                "OCI and Docker images as filesystems, without extracting them",
		Version:              version,
		Flags:                globalFlags(),
		Commands:             commands(),
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		// Errors are reported by run, in one place.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError(err)
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(stderr, "ocifs: unknown command %q\nhint: run 'ocifs --help' for the list of commands\n", name)
			os.Exit(exitUsage)
		},
	}
}

func commands() []*cli.Command {
	cmds := []*cli.Command{
		pullCommand(),
		mountCommand(),
		umountCommand(),
		buildCommand(),
		inspectCommand(),
		cacheCommand(),
		convertCommand(),
		mountServerCmd(),
		warmCmd(),
	}
	for _, c := range cmds {
		withGlobalFlags(c, "")
	}
	return cmds
}

// withGlobalFlags adds the global flags to c and its subcommands, so that
// users may type them after the command name; urfave/cli v2 does not pass
// app-level flags down by itself.
// It also gives c's usage errors a hint naming c, and rejects flags typed
// after c's arguments (rejectLateFlags). parent is the enclosing
// command's name, "" at the top.
func withGlobalFlags(c *cli.Command, parent string) {
	name := strings.TrimSpace(parent + " " + c.Name)
	c.Flags = append(c.Flags, globalFlags()...)
	if c.OnUsageError == nil {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError(err) }
	}
	if !c.Hidden { // the internal commands' errors reach users through mount and build
		c.OnUsageError = namedUsage(c.OnUsageError, name)
	}
	if len(c.Subcommands) == 0 { // a parent's arguments are its subcommand's
		before := c.Before
		c.Before = func(ctx *cli.Context) error {
			if err := rejectLateFlags(ctx, name); err != nil {
				return err
			}
			if before != nil {
				return before(ctx)
			}
			return nil
		}
	}
	if action := c.Action; action != nil && !c.Hidden {
		c.Action = func(ctx *cli.Context) error { return nameCommand(action(ctx), name) }
	}
	for _, sub := range c.Subcommands {
		withGlobalFlags(sub, name)
	}
}

// namedUsage wraps an OnUsageError function so that its error names the
// command in its hint.
func namedUsage(fn cli.OnUsageErrorFunc, name string) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, sub bool) error {
		return nameCommand(fn(c, err, sub), name)
	}
}

// nameCommand puts the command's name into a usage error's generic hint.
func nameCommand(err error, name string) error {
	var ce *cliError
	if errors.As(err, &ce) && ce.hint == genericUsageHint {
		ce.hint = fmt.Sprintf("run 'ocifs %s --help' for usage", name)
	}
	return err
}

// rejectLateFlags fails on an argument that looks like a flag: urfave/cli
// stops parsing flags at the first argument, so `ocifs cache prune REF
// --dry-run` would otherwise take --dry-run as a second REF and prune for
// real. No reference, directory or image path needs a leading dash (write
// ./-name or /-name).
func rejectLateFlags(c *cli.Context, name string) error {
	for _, a := range c.Args().Slice() {
		if len(a) > 1 && a[0] == '-' {
			return &cliError{code: exitUsage, err: fmt.Errorf("%s: flag %s after the arguments", name, a),
				hint: fmt.Sprintf("put flags before the arguments: ocifs %s %s ...", name, a)}
		}
	}
	return nil
}

func globalFlags() []cli.Flag {
	return append([]cli.Flag{
		// No EnvVars: urfave/cli would let the environment of an inner
		// command's copy of the flag beat the flag typed before the command.
		// getGlobals reads OCIFS_CACHE_DIR itself.
		&cli.StringFlag{
			Name:  "cache-dir",
			Usage: "where images, layer indexes and content are kept (default: $OCIFS_CACHE_DIR, else $XDG_CACHE_HOME/ocifs)",
		},
		&cli.StringFlag{
			Name:  "platform",
			Usage: "platform to pick from a multi-arch image, as os/arch[/variant] (default: this host's)",
		},
		&cli.BoolFlag{
			Name:  "insecure",
			Usage: "use plain HTTP and skip TLS verification for the registry (loopback registries need no flag)",
		},
		&cli.BoolFlag{
			Name:  "debug",
			Usage: "log debug detail to stderr",
		},
		&cli.BoolFlag{
			Name:  "verbose",
			Usage: "print a summary line when done, also when not on a terminal",
		},
	}, append(limitFlags(), cacheModeFlags()...)...)
}

// globals are the global flags, whether typed before or after the command.
type globals struct {
	CacheDir  string
	Platform  string
	Insecure  bool
	Debug     bool
	Verbose   bool
	Log       *slog.Logger
	Limits    cache.Limits  // --max-* flags
	Network   cache.Network // --retries, --timeout
	Mode      cache.Mode    // --cache-mode, $OCIFS_CACHE_MODE ("": the cache's default)
	SpanCache int64         // --span-cache (< 0: none)
}

func getGlobals(c *cli.Context) (*globals, error) {
	g := &globals{
		CacheDir: lookupString(c, "cache-dir"),
		Platform: lookupString(c, "platform"),
		Insecure: lookupBool(c, "insecure"),
		Debug:    lookupBool(c, "debug"),
		Verbose:  lookupBool(c, "verbose"),
	}
	if g.CacheDir == "" {
		g.CacheDir = os.Getenv("OCIFS_CACHE_DIR")
	}
	if err := parseStoreFlags(c, g); err != nil {
		return nil, err
	}
	if g.CacheDir == "" {
		dir, err := defaultCacheDir()
		if err != nil {
			return nil, err
		}
		g.CacheDir = dir
	}
	// Absolute, so that a background mount server (which runs in "/")
	// finds the same cache.
	dir, err := filepath.Abs(g.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("resolving the cache directory: %w", err)
	}
	g.CacheDir = dir
	level := slog.LevelWarn
	if g.Debug {
		level = slog.LevelDebug
	}
	g.Log = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	return g, nil
}

func defaultCacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "ocifs"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w (set --cache-dir or OCIFS_CACHE_DIR)", err)
	}
	return filepath.Join(d, "ocifs"), nil
}

// setIn returns the innermost context that set flag name (global flags
// may be given before or after the command), or nil.
func setIn(c *cli.Context, name string) *cli.Context {
	for _, cc := range c.Lineage() {
		if cc.IsSet(name) {
			return cc
		}
	}
	return nil
}

func isSet(c *cli.Context, name string) bool { return setIn(c, name) != nil }

// lookupString returns the value of the innermost context that set name,
// else the default.
func lookupString(c *cli.Context, name string) string {
	if cc := setIn(c, name); cc != nil {
		return cc.String(name)
	}
	return c.String(name)
}

func lookupBool(c *cli.Context, name string) bool {
	if cc := setIn(c, name); cc != nil {
		return cc.Bool(name)
	}
	return c.Bool(name)
}
