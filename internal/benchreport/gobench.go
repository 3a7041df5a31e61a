package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// goBench is one result line of `go test -bench`: the name (without the
// -GOMAXPROCS suffix), iterations, and every reported metric by unit
// (ns/op, B/op, allocs/op and custom units from b.ReportMetric).
type goBench struct {
	Name    string
	N       int64
	Metrics map[string]float64
}

// runGoBench runs the benchmarks matching pattern in pkg (no tests) and
// parses their results. benchtime "" keeps go test's default.
func runGoBench(ctx context.Context, pkg, pattern, benchtime string) ([]goBench, error) {
	return runGoBenchIn(ctx, "", nil, pkg, pattern, benchtime)
}

// runGoBenchIn is runGoBench from dir ("" the repository root) with env
// added to the environment.
func runGoBenchIn(ctx context.Context, dir string, env []string, pkg, pattern, benchtime string) ([]goBench, error) {
	args := []string{"test", "-run", "^$", "-bench", pattern, "-benchmem", "-count", "1", "-timeout", "60m"}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	out, err := commandIn(ctx, dir, env, "go", append(args, pkg)...)
	if err != nil {
		return nil, err
	}
	res := parseGoBench(out)
	if len(res) == 0 {
		return nil, fmt.Errorf("go test -bench %s %s printed no results:\n%s", pattern, pkg, out)
	}
	return res, nil
}

// parseGoBench reads the benchmark lines of go test's output:
//
//	BenchmarkIndicators/bars=250-2   123456   9876 ns/op   0 B/op   0 allocs/op
func parseGoBench(out string) []goBench {
	var res []goBench
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		b := goBench{Name: trimProcs(f[0]), N: n, Metrics: map[string]float64{}}
		ok := true
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			b.Metrics[f[i+1]] = v
		}
		if ok {
			res = append(res, b)
		}
	}
	return res
}

// trimProcs drops the "-2" GOMAXPROCS suffix go test appends.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// find returns the result named name, or false.
func find(bs []goBench, name string) (goBench, bool) {
	for _, b := range bs {
		if b.Name == name {
			return b, true
		}
	}
	return goBench{}, false
}
