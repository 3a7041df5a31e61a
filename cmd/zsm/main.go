// Command zsm is the operator and developer CLI of the ZSM Seven backend:
// compute indicators from a Polygon response, run the nightly pipeline
// locally, show status, invoke a function.
//
//	zsm <command> [flags]
//	zsm help [command]
//
// Exit status: 0 on success (and for help), 1 when a command fails (one line
// on stderr, prefixed "zsm: "), 2 for a usage error (unknown command or flag),
// 130 when `zsm run` or `zsm invoke` is interrupted (Ctrl-C or SIGTERM; all it started
// is stopped first).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one subcommand of zsm.
type command struct {
	// name is what the user types: zsm <name>.
	name string
	// summary is one line for `zsm help`.
	summary string
	// run executes the command with the arguments after its name. It writes
	// its result to stdout and progress or warnings to stderr, and returns
	// an error instead of exiting: main prints it as one line. Return
	// usagef(...) for bad flags or arguments (exit 2) and errHelpShown
	// after printing help (exit 0); newCmdFlags(...).parse does both.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the command table. To add a command, write it in its own file
// (run.go, status.go, invoke.go, ...) as a func with the run signature and
// add one entry here; help and dispatch pick it up.
var commands = []command{
	{name: "indicators", summary: "print price, RSI(14) and MA50 computed from one Polygon aggregates response", run: runIndicators},
	{name: "run", summary: "run the nightly pipeline locally (dynalite, sample data unless keys are set) and print the result", run: runRun},
	{name: "status", summary: "show the latest ticker rows and analysis, with freshness (local store or --stage)", run: runStatus},
	{name: "invoke", summary: "run one function's handler in process against the local stack or a deployed --stage", run: runInvoke},
}

// stdinReader is what commands read for the file name "-". Tests replace it.
var stdinReader io.Reader = os.Stdin

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := zsm(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// zsm runs one command line and returns the process exit status.
func zsm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			// `zsm help X` is `zsm X --help`.
			name, rest = rest[0], []string{"--help"}
			break
		}
		printUsage(stdout)
		return 0
	}
	c := findCommand(name)
	if c == nil {
		fmt.Fprintf(stderr, "zsm: unknown command %.40q\n", name)
		printUsage(stderr)
		return 2
	}
	return exitStatusOf(c.run(ctx, rest, stdout, stderr), stderr)
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "zsm is the operator and developer CLI of the ZSM Seven backend.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	fmt.Fprintln(w, "  zsm <command> [flags]")
	fmt.Fprintln(w, "  zsm help <command>    (or zsm <command> --help)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
}

// errHelpShown is returned by a command that printed its help: exit 0.
var errHelpShown = errors.New("help shown")

// cliUsageError is a mistake in the command line: exit status 2.
type cliUsageError struct{ msg string }

func (e *cliUsageError) Error() string { return e.msg }

// usagef returns a usage error (exit 2) with a formatted message.
func usagef(format string, a ...any) error {
	return &cliUsageError{msg: fmt.Sprintf(format, a...)}
}

// exitCode is returned by a command that has already reported its outcome
// on stderr and only wants a particular exit status. It lets a command
// written as func(...) int join the table:
// run: func(ctx, args, o, e) error { return exitWith(cmdX(ctx, args, o, e)) }.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// exitWith returns nil for 0 and an exitCode otherwise.
func exitWith(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

// exitStatusOf prints err as one line on stderr and maps it to an exit status.
func exitStatusOf(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelpShown) {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	fmt.Fprintf(stderr, "zsm: %s\n", singleLine(err.Error()))
	var ue *cliUsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// singleLine keeps an error on one line, whatever text it quotes.
func singleLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cmdFlags is a command's flags plus its help text. It embeds
// *flag.FlagSet, so commands declare flags as usual (fs.String, fs.Int, ...).
type cmdFlags struct {
	*flag.FlagSet
	synopsis, description string
	stdout                io.Writer
}

// newCmdFlags returns the flags of command name. Its help (-h, --help) prints
// synopsis, description and the flags to stdout.
func newCmdFlags(name, synopsis, description string, stdout io.Writer) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package prints errors and usage itself on a parse error; the
	// command returns the error instead and main prints it on one line.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, synopsis: synopsis, description: description, stdout: stdout}
}

// help prints the command's usage to stdout.
func (f *cmdFlags) help() {
	fmt.Fprintf(f.stdout, "Usage: %s\n\n%s\n", f.synopsis, f.description)
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(f.stdout, "\nFlags:")
		f.SetOutput(f.stdout)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

// parse parses args. Help requested → help printed and errHelpShown (exit 0);
// a bad flag → a usage error naming it (exit 2).
func (f *cmdFlags) parse(args []string) error {
	err := f.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		f.help()
		return errHelpShown
	default:
		return usagef("%s: %v (see zsm %s --help)", f.Name(), err, f.Name())
	}
}
