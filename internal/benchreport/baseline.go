package main

import (
	"context"
	"embed"
	"fmt"
	"os"
	"path/filepath"
)

// baselineCommit is the code before issue 17 (the base of its branch): the
// stored history of decision 0002, whose nights the report sets beside this
// design's.
const baselineCommit = "4046efd"

// baselineFiles are written into the worktree of baselineCommit: the
// timeline both designs play (nights_test.go, this package's own) and that
// commit's design wired to it (baseline_design.txt, a test file there).
//
//go:embed nights_test.go baseline_design.txt
var baselineFiles embed.FS

// measureBaseline runs BenchmarkNights on baselineCommit: it adds a
// temporary git worktree of it, writes the shared timeline and the adapter
// of that commit's design into its internal/benchreport, runs the benchmark
// there (dynalite from this tree's node_modules), and removes the worktree.
// The code measured is that commit's own: its pipeline, Polygon client,
// stores and local Polygon.
func measureBaseline(ctx context.Context) (_ []goBench, err error) {
	dir, err := os.MkdirTemp("", "zsm-baseline-")
	if err != nil {
		return nil, err
	}
	tree := filepath.Join(dir, "tree")
	if _, err := command(ctx, nil, "git", "worktree", "add", "--detach", tree, baselineCommit); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("worktree of %s: %w", baselineCommit, err)
	}
	defer func() {
		if _, rerr := command(context.Background(), nil, "git", "worktree", "remove", "--force", tree); rerr != nil && err == nil {
			err = rerr
		}
		os.RemoveAll(dir)
	}()
	for name, as := range map[string]string{"nights_test.go": "nights_test.go", "baseline_design.txt": "baseline_design_test.go"} {
		b, err := baselineFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(tree, "internal", "benchreport", as), b, 0o644); err != nil {
			return nil, err
		}
	}
	bin, err := filepath.Abs(filepath.Join("node_modules", ".bin", "dynalite"))
	if err != nil {
		return nil, err
	}
	return runGoBenchIn(ctx, tree, []string{"DYNALITE_BIN=" + bin}, "./internal/benchreport", "^BenchmarkNights$", "1x")
}
