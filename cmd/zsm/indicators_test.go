package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// indicRun runs one command line in process and returns its exit status and
// output.
func indicRun(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	saved := stdinReader
	stdinReader = strings.NewReader(stdin)
	defer func() { stdinReader = saved }()
	var out, errOut bytes.Buffer
	code = zsm(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// indicAggsBody builds an aggregates response with one bar per weekday from
// 2026-02-02 on, each t at midnight New York.
func indicAggsBody(t *testing.T, ticker string, closes []float64) string {
	t.Helper()
	type agg struct {
		C float64 `json:"c"`
		V float64 `json:"v"`
		T int64   `json:"t"`
	}
	var results []agg
	day := time.Date(2026, 2, 2, 0, 0, 0, 0, marketdata.NewYork())
	for _, c := range closes {
		for day.Weekday() == time.Saturday || day.Weekday() == time.Sunday {
			day = day.AddDate(0, 0, 1)
		}
		results = append(results, agg{C: c, V: 100.5, T: day.UnixMilli()})
		day = day.AddDate(0, 0, 1)
	}
	b, err := json.Marshal(map[string]any{"ticker": ticker, "status": "OK", "resultsCount": len(results), "results": results})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func indicWriteTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// indicDecode checks the output is exactly one JSON object with exactly the
// contract's keys, and returns it.
func indicDecode(t *testing.T, stdout string) map[string]any {
	t.Helper()
	if !strings.HasSuffix(stdout, "}\n") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("stdout is not one JSON line: %q", stdout)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	if len(m) != 6 {
		t.Errorf("keys %v, want exactly ticker, price, rsi, ma50, asOf, bars", m)
	}
	for _, k := range []string{"ticker", "price", "rsi", "ma50", "asOf", "bars"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %s", k, stdout)
		}
	}
	return m
}

func indicNum(t *testing.T, v any) float64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestIndicatorsStockChartsFile(t *testing.T) {
	code, stdout, stderr := indicRun(t, "", "indicators", "--aggs", filepath.Join("testdata", "stockcharts_rsi.json"))
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	m := indicDecode(t, stdout)
	// StockCharts ChartSchool cs-rsi.xls publishes RSI(14) 37.77 for the
	// last of these closes (see testdata/README.md).
	if rsi := indicNum(t, m["rsi"]); math.Abs(rsi-37.77) > 0.005 {
		t.Errorf("rsi %v, StockCharts publishes 37.77", rsi)
	}
	if m["ma50"] != nil {
		t.Errorf("ma50 %v with 33 bars, want null", m["ma50"])
	}
	if m["ticker"] != "QQQQ" || indicNum(t, m["price"]) != 43.1314 || m["asOf"] != "2026-04-08" || m["bars"] != json.Number("33") {
		t.Errorf("output %s", stdout)
	}
}

// The numbers are printed unrounded: they parse back to exactly what the
// indicators package computes.
func TestIndicatorsFullPrecision(t *testing.T) {
	closes := make([]float64, 60)
	for i := range closes {
		closes[i] = 100 + 7*math.Sin(float64(i)/3) + float64(i)/7
	}
	code, stdout, stderr := indicRun(t, indicAggsBody(t, "ABC", closes), "indicators", "--aggs", "-")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	m := indicDecode(t, stdout)
	wantRSI, _ := indicators.RSI(closes, 14)
	wantMA, _ := indicators.SMA(closes, 50)
	if got := indicNum(t, m["rsi"]); got != wantRSI {
		t.Errorf("rsi %v, want exactly %v", got, wantRSI)
	}
	if got := indicNum(t, m["ma50"]); got != wantMA {
		t.Errorf("ma50 %v, want exactly %v", got, wantMA)
	}
	if got := indicNum(t, m["price"]); got != closes[59] {
		t.Errorf("price %v, want %v", got, closes[59])
	}
}

func TestIndicatorsThresholds(t *testing.T) {
	rising := func(n int) []float64 {
		c := make([]float64, n)
		for i := range c {
			c[i] = float64(i + 1)
		}
		return c
	}
	tests := []struct {
		n        int
		wantRSI  any // nil or float64
		wantMA50 any
	}{
		{1, nil, nil},
		{14, nil, nil},
		{15, 100.0, nil},
		{49, 100.0, nil},
		{50, 100.0, 25.5}, // mean of 1..50
		{60, 100.0, 35.5}, // mean of 11..60
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			file := indicWriteTemp(t, "aggs.json", indicAggsBody(t, "UP", rising(tt.n)))
			code, stdout, stderr := indicRun(t, "", "indicators", "--aggs", file)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			m := indicDecode(t, stdout)
			for key, want := range map[string]any{"rsi": tt.wantRSI, "ma50": tt.wantMA50} {
				switch {
				case want == nil && m[key] != nil:
					t.Errorf("%s = %v, want null", key, m[key])
				case want != nil && (m[key] == nil || indicNum(t, m[key]) != want.(float64)):
					t.Errorf("%s = %v, want %v", key, m[key], want)
				}
			}
			if m["bars"] != json.Number(fmt.Sprint(tt.n)) || indicNum(t, m["price"]) != float64(tt.n) {
				t.Errorf("output %s", stdout)
			}
		})
	}
}

func TestIndicatorsErrors(t *testing.T) {
	samples := filepath.Join("..", "..", "pkg", "polygon", "testdata", "aggs")
	dup := `{"ticker":"X","status":"OK","results":[{"c":1,"t":1772773200000},{"c":2,"t":1772775000000}]}`
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantErr  string
	}{
		{"no bars (results null)", []string{"--aggs", filepath.Join(samples, "results_null.json")}, "", 1, "no bars"},
		{"no bars (results absent)", []string{"--aggs", filepath.Join(samples, "results_absent.json")}, "", 1, "no bars"},
		{"invalid JSON", []string{"--aggs", "-"}, `{"status":"OK","results":[`, 1, "decode polygon aggregates"},
		{"not JSON at all", []string{"--aggs", "-"}, "<html>\n<body>502</body>\n</html>", 1, "decode polygon aggregates"},
		{"empty input", []string{"--aggs", "-"}, "", 1, "decode polygon aggregates"},
		{"duplicate trading date", []string{"--aggs", "-"}, dup, 1, "bar 1 (2026-03-06): second bar for the same trading date"},
		{"zero close", []string{"--aggs", "-"}, `{"status":"OK","results":[{"c":0,"t":1772773200000}]}`, 1, "bar 0 (2026-03-06): close 0"},
		{"error body 401", []string{"--aggs", filepath.Join(samples, "error_401_unknown_key.json")}, "", 1, `"ERROR": "Unknown API Key"`},
		{"error body 403", []string{"--aggs", filepath.Join(samples, "error_403_not_authorized.json")}, "", 1, `"NOT_AUTHORIZED"`},
		{"missing file", []string{"--aggs", filepath.Join(t.TempDir(), "nope.json")}, "", 1, "no such file"},
		{"no --aggs", nil, "", 2, "--aggs FILE is required"},
		{"unknown flag", []string{"--bogus"}, "", 2, "flag provided but not defined: -bogus"},
		{"extra argument", []string{"--aggs", "-", "more"}, "", 2, `unexpected argument "more"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := indicRun(t, tt.stdin, append([]string{"indicators"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.HasPrefix(stderr, "zsm: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Errorf("stderr is not one line prefixed zsm: %q", stderr)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestHelpAndUsage(t *testing.T) {
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{[]string{"--help"}, 0, "Commands:\n  indicators", ""},
		{[]string{"-h"}, 0, "Usage:", ""},
		{[]string{"help"}, 0, "zsm <command> [flags]", ""},
		{[]string{"indicators", "--help"}, 0, "Usage: zsm indicators --aggs FILE", ""},
		{[]string{"indicators", "-h"}, 0, "-aggs FILE", ""},
		{[]string{"help", "indicators"}, 0, `"rsi": number|null`, ""},
		{nil, 2, "", "Usage:"},
		{[]string{"frobnicate"}, 2, "", "zsm: unknown command \"frobnicate\"\n"},
		{[]string{"help", "frobnicate"}, 2, "", "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := indicRun(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if tt.wantStdout == "" && stdout != "" || !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout, tt.wantStdout)
			}
			if tt.wantStderr == "" && stderr != "" || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
	// Help shows each command once, even though the flag package would
	// also print usage on its own.
	_, stdout, _ := indicRun(t, "", "indicators", "--help")
	if n := strings.Count(stdout, "Usage: zsm indicators"); n != 1 {
		t.Errorf("indicators --help printed its usage %d times", n)
	}
}

func TestExitWith(t *testing.T) {
	var buf bytes.Buffer
	if got := exitStatusOf(exitWith(0), &buf); got != 0 {
		t.Errorf("exitWith(0) → %d", got)
	}
	if got := exitStatusOf(exitWith(3), &buf); got != 3 || buf.Len() != 0 {
		t.Errorf("exitWith(3) → %d, printed %q", got, buf.String())
	}
}

// The real binary: exit status, stdout and the one stderr line as a shell
// or another check sees them.
func TestIndicatorsBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build zsm: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "zsm")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(stdin string, args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errOut.String()
	}

	code, stdout, stderr := run("", "indicators", "--aggs", filepath.Join("testdata", "stockcharts_rsi.json"))
	if code != 0 || stderr != "" {
		t.Fatalf("valid file: exit %d, stderr %q", code, stderr)
	}
	if m := indicDecode(t, stdout); m["asOf"] != "2026-04-08" {
		t.Errorf("valid file: %s", stdout)
	}

	code, stdout, stderr = run(`{"status":"OK","results":[{"c":1,"t":1772773200000},`, "indicators", "--aggs", "-")
	if code != 1 || stdout != "" {
		t.Errorf("invalid JSON: exit %d, stdout %q", code, stdout)
	}
	if !strings.HasPrefix(stderr, "zsm: indicators: -: decode polygon aggregates") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("invalid JSON: stderr %q, want one zsm: line", stderr)
	}

	if code, stdout, _ := run("", "--help"); code != 0 || !strings.Contains(stdout, "indicators") {
		t.Errorf("--help: exit %d, stdout %q", code, stdout)
	}
	if code, _, stderr := run("", "nonsense"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr)
	}
}
