package main

import (
	"bufio"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/rie"
	"github.com/zsmseven/backend/pkg/deploy"
)

// initGroup is the package initialisation (init functions and package-level
// variables, run before main) of the packages of one origin in a bootstrap,
// as GODEBUG=inittrace=1 reports it: medians over several starts.
type initGroup struct {
	Origin   string
	Packages int
	Clock    time.Duration
	Bytes    int64
	// Top are the costliest packages of the group, most expensive first.
	Top []pkgInit
}

type pkgInit struct {
	Package string
	Clock   time.Duration
	Bytes   int64
}

// The runtime prints one line per initialised package:
// "init <pkg> @<start> ms, <clock> ms clock, <bytes> bytes, <n> allocs".
var initTraceRE = regexp.MustCompile(`^init (\S+) @[0-9.]+ ms, ([0-9.]+) ms clock, (\d+) bytes, \d+ allocs`)

// Origins, in the order reported.
const (
	originSDK    = "AWS SDK (aws-sdk-go-v2, smithy-go)"
	originLambda = "aws-lambda-go"
	originOwn    = "this module"
	originStd    = "Go standard library and runtime"
	originOther  = "other modules"
)

func originOf(pkg string) string {
	switch {
	case strings.HasPrefix(pkg, "github.com/aws/aws-sdk-go-v2"), strings.HasPrefix(pkg, "github.com/aws/smithy-go"):
		return originSDK
	case strings.HasPrefix(pkg, "github.com/aws/aws-lambda-go"):
		return originLambda
	case strings.HasPrefix(pkg, "github.com/zsmseven/backend"):
		return originOwn
	case !strings.Contains(strings.SplitN(pkg, "/", 2)[0], "."):
		return originStd
	default:
		return originOther
	}
}

// traceInits starts the bootstrap n times with GODEBUG=inittrace=1 against
// the in-process Runtime API, stops it at its first /next, and returns the
// median package initialisation per origin, and per package.
func traceInits(ctx context.Context, boot string, st *devstack.Stack, n int) ([]initGroup, map[string]pkgInit, error) {
	runs := make([]map[string]pkgInit, 0, n)
	for range n {
		r, err := rie.StartRuntime(ctx, rie.RuntimeOptions{Bootstrap: boot, Region: st.Env["AWS_REGION"], MemoryMB: coldMemoryMB, TimeoutSeconds: coldTimeoutSeconds,
			Env: append(st.EnvList(), "GREETING=hello", deploy.EnvLogLevel+"=warn", "GODEBUG=inittrace=1")})
		if err != nil {
			return nil, nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err = r.WaitInit(wctx)
		cancel()
		out := r.Output()
		r.Stop()
		if err != nil {
			return nil, nil, fmt.Errorf("init with inittrace: %w", err)
		}
		pkgs := parseInitTrace(out)
		if len(pkgs) == 0 {
			return nil, nil, fmt.Errorf("no inittrace lines in the output:\n%s", tail(out, 1000))
		}
		runs = append(runs, pkgs)
	}
	// Median per package, then summed per origin.
	perPkg := map[string]pkgInit{}
	for pkg := range runs[0] {
		var clocks []time.Duration
		var bytes []int64
		for _, run := range runs {
			clocks, bytes = append(clocks, run[pkg].Clock), append(bytes, run[pkg].Bytes)
		}
		perPkg[pkg] = pkgInit{Package: pkg, Clock: median(clocks), Bytes: median(bytes)}
	}
	groups := map[string]*initGroup{}
	for _, p := range perPkg {
		o := originOf(p.Package)
		g, ok := groups[o]
		if !ok {
			g = &initGroup{Origin: o}
			groups[o] = g
		}
		g.Packages++
		g.Clock += p.Clock
		g.Bytes += p.Bytes
		g.Top = append(g.Top, p)
	}
	out := make([]initGroup, 0, len(groups))
	for _, o := range []string{originSDK, originLambda, originOwn, originStd, originOther} {
		g, ok := groups[o]
		if !ok {
			continue
		}
		slices.SortFunc(g.Top, func(a, b pkgInit) int {
			if a.Clock != b.Clock {
				return int(b.Clock - a.Clock)
			}
			return strings.Compare(a.Package, b.Package)
		})
		g.Top = slices.Clone(g.Top[:min(3, len(g.Top))])
		out = append(out, *g)
	}
	return out, perPkg, nil
}

// initOf sums the initialisation of the packages under prefix.
func initOf(pkgs map[string]pkgInit, prefix string) time.Duration {
	var d time.Duration
	for name, p := range pkgs {
		if name == prefix || strings.HasPrefix(name, prefix+"/") {
			d += p.Clock
		}
	}
	return d
}

func parseInitTrace(output string) map[string]pkgInit {
	out := map[string]pkgInit{}
	sc := bufio.NewScanner(strings.NewReader(output))
	for sc.Scan() {
		m := initTraceRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		clock, err1 := strconv.ParseFloat(m[2], 64)
		bytes, err2 := strconv.ParseInt(m[3], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out[m[1]] = pkgInit{Package: m[1], Clock: time.Duration(clock * float64(time.Millisecond)), Bytes: bytes}
	}
	return out
}
