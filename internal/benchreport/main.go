// Command benchreport is `make bench`: it measures, in one run on this
// machine, everything docs/benchmarks.md reports side by side — indicator
// computation, market-data calls per ticker, pacing efficiency against a
// rate-limited local Polygon, the market-data nights of this design beside
// the code before issue 17 (run from a temporary git worktree of it), a night
// of 1,000 portfolio analyses through the
// analysis queue against the local xAI server, cold start of each bootstrap under the Lambda
// Runtime Interface Emulator beside a hello-world Lambda, bootstrap sizes,
// and the wall time of `make synth` (both stages) and `make test` — then
// writes the report and prints it.
//
// Nothing here asserts performance; the targets are printed beside the
// figures for a reader to judge.
//
// Usage (from the repository root):
//
//	go run ./internal/benchreport [-out docs/benchmarks.md] [-rounds 25] [-only market]
//
// BENCH_SKIP_TEST=1 skips timing `make test` (when `make bench` runs right
// after it, timing it again doubles the wait). -only market (or analysis)
// measures the market-data (or analysis) sections alone and replaces them
// in the existing report.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

func main() {
	out := flag.String("out", "docs/benchmarks.md", "report to write")
	rounds := flag.Int("rounds", 25, "cold starts measured per function (the median is reported)")
	only := flag.String("only", "", `"market" or "analysis": measure those sections only and replace them in -out`)
	flag.Parse()
	var err error
	switch *only {
	case "":
		err = run(context.Background(), *out, *rounds)
	case "market":
		err = runMarket(context.Background(), *out)
	case "analysis":
		err = runAnalysis(context.Background(), *out)
	default:
		err = fmt.Errorf("-only %q: want market or analysis", *only)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// report is everything measured, rendered by render.
type report struct {
	Machine       machine
	Date          time.Time
	Indicator     []goBench
	Market        []goBench // BenchmarkCallsPerTicker, BenchmarkPacing
	AnalysisNight []goBench // BenchmarkAnalysisNight
	// Nights is BenchmarkNights on this tree; Baseline the same timeline
	// on the code before issue 17 (baselineCommit), in a worktree.
	Nights, Baseline []goBench
	// AnalysisDesigns is BenchmarkAnalysisDesigns: today's design and the
	// two levels side by side.
	AnalysisDesigns []goBench
	Cold            []coldStart
	ColdNote        string
	Sizes           []size
	Timings         []timing
	Prompts         []promptSize
	Notes           []string
}

type machine struct {
	CPU   string
	Cores int
	Go    string
	OS    string
}

func run(ctx context.Context, out string, rounds int) error {
	r := report{Date: time.Now().UTC(), Machine: describeMachine()}
	var err error

	step("indicators: go test -bench BenchmarkIndicators -benchmem ./pkg/indicators")
	if r.Indicator, err = runGoBench(ctx, "./pkg/indicators", "^BenchmarkIndicators$", ""); err != nil {
		return err
	}
	if err := measureMarket(ctx, &r); err != nil {
		return err
	}
	if err := measureAnalysis(ctx, &r); err != nil {
		return err
	}
	step(fmt.Sprintf("cold start: %d rounds per bootstrap under the emulator", rounds))
	if r.Cold, r.ColdNote, err = measureColdStarts(ctx, rounds); err != nil {
		return err
	}
	step("sizes: make build (linux/arm64)")
	if r.Sizes, err = measureSizes(ctx, r.Cold); err != nil {
		return err
	}
	step("wall time: make synth of dev and prod, make test")
	r.Timings, r.Notes = measureTimings(ctx)

	doc := render(r)
	if err := os.WriteFile(out, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Print(doc)
	fmt.Fprintf(os.Stderr, "benchreport: wrote %s\n", out)
	return nil
}

func step(s string) { fmt.Fprintf(os.Stderr, "benchreport: %s\n", s) }

// measureMarket runs the market-data benchmarks.
func measureMarket(ctx context.Context, r *report) error {
	var err error
	step("market data: calls per ticker and pacing (./internal/benchreport benchmarks)")
	if r.Market, err = runGoBench(ctx, "./internal/benchreport", "^Benchmark(CallsPerTicker|Pacing)$", "1x"); err != nil {
		return err
	}
	step("market data: the nights of 500 and 10,000 tickers (BenchmarkNights; a few minutes)")
	if r.Nights, err = runGoBench(ctx, "./internal/benchreport", "^BenchmarkNights$", "1x"); err != nil {
		return err
	}
	step("market data: the same nights on the code before issue 17 (" + baselineCommit + "), in a temporary git worktree (a few minutes)")
	r.Baseline, err = measureBaseline(ctx)
	return err
}

// measureAnalysis runs the analysis benchmarks and measures the requests.
func measureAnalysis(ctx context.Context, r *report) error {
	var err error
	step("analysis: today's design and the two levels on the same nights of 1,000 and 10,000 portfolios (BenchmarkAnalysisDesigns; a git worktree of " + todaysDesign + "; about 3-5 minutes)")
	if r.AnalysisDesigns, err = runGoBench(ctx, "./internal/benchreport", "^BenchmarkAnalysisDesigns$", "1x"); err != nil {
		return err
	}
	step("analysis: 1,000 portfolios in one night through the deployed wiring (BenchmarkAnalysisNight, about 2-3 minutes)")
	if r.AnalysisNight, err = runGoBench(ctx, "./internal/benchreport", "^BenchmarkAnalysisNight$", "1x"); err != nil {
		return err
	}
	step("analysis prompt sizes")
	r.Prompts, err = measurePrompts(7, 10, 40, 200, 500)
	return err
}

// runAnalysis measures the analysis sections and replaces them in the
// report at out, leaving every other measurement as it was.
func runAnalysis(ctx context.Context, out string) error {
	old, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	r := report{Date: time.Now().UTC(), Machine: describeMachine()}
	if err := measureAnalysis(ctx, &r); err != nil {
		return err
	}
	doc, err := spliceAnalysis(string(old), renderAnalysis(r))
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Fprintf(os.Stderr, "benchreport: replaced the analysis sections of %s\n", out)
	return nil
}

// runMarket measures the market-data sections and replaces them in the
// report at out (from "## Market data" to the next section after them),
// leaving every other measurement as it was.
func runMarket(ctx context.Context, out string) error {
	old, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	r := report{Date: time.Now().UTC(), Machine: describeMachine()}
	if err := measureMarket(ctx, &r); err != nil {
		return err
	}
	doc, err := spliceMarket(string(old), renderMarket(r))
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Fprintf(os.Stderr, "benchreport: replaced the market-data sections of %s\n", out)
	return nil
}

func describeMachine() machine {
	m := machine{CPU: "unknown", Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := exec.Command("go", "version").Output(); err == nil {
		m.Go = strings.TrimSpace(strings.TrimPrefix(string(b), "go version "))
	}
	return m
}

// command runs name with args from the repository root and returns its
// combined output, with the output in the error when it fails.
func command(ctx context.Context, env []string, name string, args ...string) (string, error) {
	return commandIn(ctx, "", env, name, args...)
}

// commandIn is command run from dir ("" the repository root).
func commandIn(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		tail := buf.String()
		if len(tail) > 4000 {
			tail = "…" + tail[len(tail)-4000:]
		}
		return buf.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	return buf.String(), nil
}
