package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
)

// size is one function's bootstrap size: the host build the emulator ran and
// the deployed linux/arm64 build of `make build`.
type size struct {
	Name            string
	HostBytes       int64
	ArmBytes        int64
	ArmBuildMissing bool
}

// timing is the wall time of one make target.
type timing struct {
	Command string
	Wall    time.Duration
	Skipped string // why it was not measured
}

var functionDirs = map[string]string{"processTickers": "processtickers", "processTicker": "processticker", "analyzePortfolio": "analyzeportfolio"}

// measureSizes runs `make build` and reads each dist/<fn>/bootstrap.
func measureSizes(ctx context.Context, cold []coldStart) ([]size, error) {
	if _, err := command(ctx, nil, "make", "build"); err != nil {
		return nil, err
	}
	var out []size
	for _, c := range cold {
		s := size{Name: c.Name, HostBytes: c.HostBytes}
		dir, ok := functionDirs[c.Name]
		if !ok {
			s.ArmBuildMissing = true // the hello reference is not deployed
			out = append(out, s)
			continue
		}
		info, err := os.Stat(filepath.Join("dist", dir, "bootstrap"))
		if err != nil {
			s.ArmBuildMissing = true
		} else {
			s.ArmBytes = info.Size()
		}
		out = append(out, s)
	}
	return out, nil
}

// measureTimings times `make synth` for both stages and `make test` (unless
// BENCH_SKIP_TEST=1). A failing target is reported, not fatal: the other
// figures are still worth writing down.
func measureTimings(ctx context.Context) ([]timing, []string) {
	var out []timing
	var notes []string
	timeIt := func(name string, env []string, args ...string) {
		start := time.Now()
		_, err := command(ctx, env, "make", args...)
		t := timing{Command: name, Wall: time.Since(start)}
		if err != nil {
			t.Skipped = "failed"
			notes = append(notes, fmt.Sprintf("`%s` failed: %s", name, firstLine(err.Error())))
		}
		out = append(out, t)
	}
	for _, stage := range []string{deploy.StageDev, deploy.StageProd} {
		timeIt("make synth "+stageArg(stage), nil, "synth", stageArg(stage))
	}
	if os.Getenv("BENCH_SKIP_TEST") == "1" {
		out = append(out, timing{Command: "make test", Skipped: "BENCH_SKIP_TEST=1"})
	} else {
		// Without the test cache: every test runs, as on a fresh clone
		// (the build cache stays warm).
		timeIt("make test", []string{"GOFLAGS=-count=1"}, "test")
	}
	return out, notes
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

// stageArg is the Makefile's stage parameter, e.g. deploy.EnvStage+"=dev" (named as
// the functions' stage variable).
func stageArg(stage string) string { return deploy.EnvStage + "=" + stage }
