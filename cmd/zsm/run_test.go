package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/dynalite"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pipeline"
)

// noKeys is a host environment without POLYGON_API_KEY or XAI_API_KEY,
// whatever the machine running the tests has set.
func noKeys(string) (string, bool) { return "", false }

// runOnce runs the pipeline in process and returns stdout and stderr.
func runOnce(t *testing.T, o runOptions) (string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := runPipeline(context.Background(), o, noKeys, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errOut.String())
	}
	return out.String(), errOut.String()
}

// tableRow is one line of the result table:
// TICKER PRICE RSI MA50 vs-MA50 SCORE SIGNAL AS-OF.
var tableRow = regexp.MustCompile(`(?m)^([A-Z][A-Z.\-]*)\s+(\d+\.\d\d)\s+(\d+\.\d)\s+(\d+\.\d\d)\s+([+-]\d+\.\d%)\s+(\d+)\s+(strong_buy|buy|hold|sell|strong_sell)\s+(\d{4}-\d\d-\d\d)$`)

// parseTable returns the table's lines by ticker.
func parseTable(t *testing.T, out string) map[string][]string {
	t.Helper()
	rows := map[string][]string{}
	for _, m := range tableRow.FindAllStringSubmatch(out, -1) {
		if _, dup := rows[m[1]]; dup {
			t.Errorf("ticker %s printed twice", m[1])
		}
		rows[m[1]] = m[2:]
	}
	return rows
}

// stable drops the lines that differ between two runs of the same data
// (timings, log file names).
func stable(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "logs:") || strings.Contains(l, "done in") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func TestRunPrintsAllSevenAndIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	o := runOptions{dataDir: filepath.Join(dir, "dynalite"), logDir: filepath.Join(dir, "logs"), portfolio: devstack.SamplePortfolio}
	out1, err1 := runOnce(t, o)
	rows := parseTable(t, out1)
	for _, sym := range devstack.SampleSymbols {
		r, ok := rows[sym]
		if !ok {
			t.Errorf("%s missing from the table:\n%s", sym, out1)
			continue
		}
		price, _ := strconv.ParseFloat(r[0], 64)
		ma50, _ := strconv.ParseFloat(r[2], 64)
		rsi, _ := strconv.ParseFloat(r[1], 64)
		score, _ := strconv.Atoi(r[4])
		// vs MA50 is derived from the printed price and MA50.
		pct, _ := strconv.ParseFloat(strings.TrimSuffix(r[3], "%"), 64)
		if want := (price/ma50 - 1) * 100; abs(pct-want) > 0.06 {
			t.Errorf("%s vs MA50 %s, want %.2f%% from price %.2f and MA50 %.2f", sym, r[3], want, price, ma50)
		}
		if price <= 0 || rsi < 0 || rsi > 100 || score < 0 || score > 100 {
			t.Errorf("%s row out of range: %v", sym, r)
		}
	}
	if len(rows) != 7 {
		t.Errorf("%d rows, want 7:\n%s", len(rows), out1)
	}
	for _, want := range []string{"SAMPLE DATA", "rules analyst", "data as of", "kept under " + o.dataDir} {
		if !strings.Contains(out1, want) {
			t.Errorf("output lacks %q:\n%s", want, out1)
		}
	}
	// A cold store: the day (every held ticker present), the splits of the
	// window, its 252 other sessions as fill messages (progress lines), the
	// first rows partial, then complete.
	for _, want := range []string{"7 tickers queued", "batch of 8", "day 2026", "day stored: 7 of 7 held tickers in the grouped answer",
		"the window lacks 252 sessions: fill queued", "AAPL   ticker refreshed, partial while its window is filled",
		"fill   the window of ", "; 25 of 252 sessions filled, 27 market-data calls so far", "252 of 252 sessions filled",
		"market-data calls: 254 (253 grouped, 1 splits, 0 per-ticker)", "analyzePortfolio", "rules analyst"} {
		if !strings.Contains(err1, want) {
			t.Errorf("progress lacks %q:\n%s", want, err1)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(o.logDir, "run-*.jsonl"))
	if len(logs) != 1 {
		t.Fatalf("log files %v, want one", logs)
	}
	if b, _ := os.ReadFile(logs[0]); !bytes.Contains(b, []byte(`"msg":"ticker refreshed"`)) {
		t.Errorf("log file lacks the functions' JSON logs")
	}

	// The second run on the same data: the same table, the analysis reused,
	// no duplicate rows.
	out2, err2 := runOnce(t, o)
	if stable(out2) != stable(out1) {
		t.Errorf("second run printed a different result:\n%s\nvs\n%s", out2, out1)
	}
	if !strings.Contains(err2, "reused the stored analysis") {
		t.Errorf("second run did not reuse the analysis:\n%s", err2)
	}
	// The same night again: every row of the day is stored, no call.
	if !strings.Contains(err2, "AAPL   row of ") || !strings.Contains(err2, "market-data calls: 0 (0 grouped, 0 splits, 0 per-ticker)") || strings.Contains(err2, "own bars fetched") {
		t.Errorf("second run fetched tickers again:\n%s", err2)
	}
	st, err := devstack.Start(context.Background(), devstack.Options{DataDir: o.dataDir, NoQueue: true, NoMarketData: true, NoSeed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	for table, want := range map[string]int32{
		deploy.TickerData.Name(st.Stage): 7, deploy.PortfolioAnalyses.Name(st.Stage): 1, deploy.PortfolioPositions.Name(st.Stage): 7,
	} {
		out, err := st.DB.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), Select: "COUNT"})
		if err != nil {
			t.Fatal(err)
		}
		if out.Count != want {
			t.Errorf("%s holds %d items after two runs, want %d", table, out.Count, want)
		}
	}
}

func TestRunInMemoryTwiceGivesTheSameResult(t *testing.T) {
	o := runOptions{logDir: t.TempDir(), portfolio: devstack.SamplePortfolio}
	out1, _ := runOnce(t, o)
	out2, _ := runOnce(t, o)
	if !strings.Contains(out1, "held in memory") {
		t.Errorf("output does not say the data is in memory:\n%s", out1)
	}
	// Everything but the analysis time stamp, the timings and the log file.
	ts := regexp.MustCompile(`at \d{4}-\d\d-\d\dT[0-9:.]+Z`)
	if a, b := ts.ReplaceAllString(stable(out1), "at T"), ts.ReplaceAllString(stable(out2), "at T"); a != b {
		t.Errorf("in-memory runs differ:\n%s\nvs\n%s", a, b)
	}
}

func TestStatusAndInvokeAfterRun(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "dynalite")
	runOnce(t, runOptions{dataDir: data, logDir: filepath.Join(dir, "logs"), portfolio: devstack.SamplePortfolio})

	code, stdout, stderr := indicRun(t, "", "status", "--json", "--data", data)
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, stderr)
	}
	var rep struct {
		Tickers []struct {
			Ticker string
			Price  *float64
			RSI    *float64
			MA50   *float64
			AsOf   string
			Source string
			Fresh  *bool
		}
		Analysis *struct {
			Portfolio, Model, Status, DataAsOf string
			Tickers                            []struct {
				Ticker string
				Score  *int
				Signal string
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, stdout)
	}
	if len(rep.Tickers) != 7 || rep.Analysis == nil || len(rep.Analysis.Tickers) != 7 {
		t.Fatalf("status --json: %s", stdout)
	}
	for _, tk := range rep.Tickers {
		if tk.Price == nil || tk.RSI == nil || tk.MA50 == nil || tk.AsOf == "" || tk.Source != "sandbox" || tk.Fresh == nil {
			t.Errorf("ticker %+v lacks a field", tk)
		}
	}
	// Every stored indicator reaches the JSON under its row name: with 400
	// days of sample history (about 275 sessions) each one has a value.
	var raw struct{ Tickers []map[string]any }
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range indicators.Fields {
		if v, ok := raw.Tickers[0][f.Name].(float64); !ok || v == 0 {
			t.Errorf("status --json: %s of %v is %v, want a number", f.Name, raw.Tickers[0]["ticker"], raw.Tickers[0][f.Name])
		}
	}
	a := rep.Analysis
	if a.Portfolio != "ZSM Seven" || a.Model == "" || a.Status != "fallback" || a.DataAsOf != rep.Tickers[0].AsOf {
		t.Errorf("analysis %+v", a)
	}
	for _, s := range a.Tickers {
		if s.Score == nil || s.Signal == "" {
			t.Errorf("analysis ticker %+v", s)
		}
	}

	// invoke runs the handler in process against the same store.
	t.Setenv("POLYGON_API_KEY", "")
	t.Setenv("XAI_API_KEY", "")
	code, stdout, stderr = indicRun(t, "", "invoke", "analyzePortfolio", "--event", `{"portfolio_name":"ZSM Seven"}`, "--data", data)
	if code != 0 {
		t.Fatalf("invoke exit %d: %s", code, stderr)
	}
	var res struct {
		Portfolios []struct{ Portfolio, Status string }
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Portfolios) != 1 || res.Portfolios[0].Status != "reused" {
		t.Errorf("invoke printed %s (%v), want the analysis reused", stdout, err)
	}
	event := filepath.Join(dir, "event.json")
	if err := os.WriteFile(event, []byte(`{"Records":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = indicRun(t, "", "invoke", "processticker", "--event", "@"+event, "--data", data)
	if code != 0 || !strings.Contains(stdout, "batchItemFailures") {
		t.Errorf("invoke processTicker: exit %d stdout %s stderr %s", code, stdout, stderr)
	}
}

func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args     []string
		wantCode int
		want     string // in stderr (stdout for help)
	}{
		{[]string{"run", "--help"}, 0, "Usage: zsm run"},
		{[]string{"status", "--help"}, 0, "Usage: zsm status"},
		{[]string{"invoke", "--help"}, 0, "Usage: zsm invoke"},
		{[]string{"help", "run"}, 0, "sandbox"},
		{[]string{"run", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"run", "extra"}, 2, "unexpected argument"},
		{[]string{"status", "--stage", "qa"}, 2, `stage "qa" is not valid`},
		{[]string{"status", "--data", filepath.Join(dir, "none")}, 1, "run `make run` first"},
		{[]string{"invoke"}, 2, "FUNCTION is required"},
		{[]string{"invoke", "frob", "--event", "{}"}, 2, "unknown function"},
		{[]string{"invoke", "analyzePortfolio"}, 2, "--event is required"},
		{[]string{"invoke", "analyzePortfolio", "--event", "{not json"}, 2, "not valid JSON"},
		{[]string{"invoke", "analyzePortfolio", "--event", "@" + filepath.Join(dir, "missing.json")}, 2, "read event"},
		{[]string{"invoke", "analyzePortfolio", "--event", "{}", "--stage", "staging"}, 2, "not valid"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := indicRun(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			got := stderr
			if tt.wantCode == 0 {
				got = stdout
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("output %q, want it to contain %q", got, tt.want)
			}
			if tt.wantCode != 0 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("error is not one line: %q", stderr)
			}
		})
	}
}

// Ctrl-C during a run stops dynalite and every server the run started.
func TestRunInterruptStopsChildren(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "zsm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--memory", "--logs", t.TempDir())
	cmd.Dir = repo // dynalite is found under node_modules
	// One call per minute: the run waits for the rate limit, where we stop it.
	cmd.Env = append(os.Environ(), "POLYGON_API_KEY=", "XAI_API_KEY=", "POLYGON_CALLS_PER_MINUTE=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	endpoint := regexp.MustCompile(`dynalite\s+(http://\S+),`)
	var dyn string
	var seen []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		if m := endpoint.FindStringSubmatch(line); m != nil {
			dyn = m[1]
		}
		if strings.Contains(line, "batch of") {
			break
		}
	}
	if dyn == "" {
		t.Fatalf("no dynalite endpoint in the progress:\n%s", strings.Join(seen, "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest := new(bytes.Buffer)
	_, _ = rest.ReadFrom(stderr)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want status 130\n%s", err, rest)
	}
	if !strings.Contains(rest.String(), "interrupted") {
		t.Errorf("no interruption message:\n%s", rest)
	}
	client := http.Client{Timeout: time.Second}
	if resp, err := client.Get(dyn); err == nil {
		resp.Body.Close()
		t.Errorf("dynalite at %s still answers after Ctrl-C", dyn)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// With keys set, run calls "Polygon" and "xAI" at the configured URLs (here
// local servers speaking their formats) and says so.
func TestRunWithKeysCallsTheConfiguredAPIs(t *testing.T) {
	poly := fakepolygon.New(t, fakepolygon.Options{Key: "polygon-key"})
	var tickers []map[string]any
	for _, s := range devstack.SampleSymbols {
		tickers = append(tickers, map[string]any{"ticker": s, "score": 70, "signal": "buy", "rationale": s + " holds above its average.",
			"confidence": "high", "key_risk": "valuation", "action": "add"})
	}
	var tops []map[string]any
	for _, s := range devstack.SampleSymbols[:3] {
		tops = append(tops, map[string]any{"ticker": s, "action": "add", "reason": "Uptrend."})
	}
	// The ticker analyst's answer, then the portfolio manager's.
	scores, _ := json.Marshal(map[string]any{"tickers": tickers})
	overview, _ := json.Marshal(map[string]any{"summary": "Constructive.", "overall_risk": "medium", "concentration_flags": []string{}, "top_actions": tops})
	xs := fakexai.New(t, fakexai.Answer(string(scores)), fakexai.Answer(string(overview)))
	xs.RequireKey = "xai-key"
	host := map[string]string{
		"POLYGON_API_KEY": "polygon-key", "POLYGON_BASE_URL": poly.URL, "POLYGON_CALLS_PER_MINUTE": "0",
		"XAI_API_KEY": "xai-key", "XAI_API_URL": xs.URL, "XAI_MODEL": "grok-4.3",
	}
	var out, errOut bytes.Buffer
	o := runOptions{logDir: t.TempDir(), portfolio: devstack.SamplePortfolio}
	if err := runPipeline(context.Background(), o, func(k string) (string, bool) { v, ok := host[k]; return v, ok }, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	if rows := parseTable(t, out.String()); len(rows) != 7 || rows["AAPL"][5] != "buy" {
		t.Errorf("table:\n%s", out.String())
	}
	for _, want := range []string{"by: model grok-4.3", "Constructive."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "SAMPLE DATA") {
		t.Errorf("output calls Polygon's prices sample data:\n%s", out.String())
	}
	for _, want := range []string{"prices     Polygon at " + poly.URL, "analysis   xAI, grok-4.3"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, errOut.String())
		}
	}
	if xs.Calls() != 2 {
		t.Errorf("%d xAI calls, want 2 (the seven tickers' scores, the overview)", xs.Calls())
	}
}

// status and invoke with --stage use the default AWS credential chain and the
// stage's resource names; here the chain's endpoint variables point them at
// dynalite (tables of stage dev) and localsqs (the dev queue).
func TestStageTargetsUseTheStageNames(t *testing.T) {
	ctx := context.Background()
	db, err := dynalite.Start(ctx, dynalite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Stop()
	client := dynalite.Client(db.Endpoint)
	if err := dynalite.CreateTables(ctx, client, "dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := devstack.SeedSamplePortfolio(ctx, client, "dev"); err != nil {
		t.Fatal(err)
	}
	sq, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	sq.CreateQueue("ticker-processing-queue-dev.fifo")
	// The functions as deployed in dev: invoke reads their environment
	// (GetFunctionConfiguration), the deployed pacing included.
	tables := deploy.TableEnv("dev")
	withTables := func(m map[string]string) map[string]string {
		maps.Copy(m, tables)
		m["LOG_LEVEL"] = "info"
		return m
	}
	lambdaURL := fakeLambda(t, map[string]map[string]string{
		"zsm-processTickers-dev": withTables(map[string]string{"TICKER_QUEUE_URL": sq.QueueURL("ticker-processing-queue-dev.fifo"), "TICKER_MESSAGE_GROUPS": "1"}),
		"zsm-processTicker-dev": withTables(map[string]string{"TICKER_QUEUE_URL": sq.QueueURL("ticker-processing-queue-dev.fifo"),
			"TICKER_DLQ_URL": sq.QueueURL("ticker-processing-dlq-dev.fifo"), "API_KEYS_SECRET_ARN": "zsm-seven/dev/api-keys",
			"POLYGON_BASE_URL": "https://api.polygon.io", "POLYGON_CALLS_PER_MINUTE": "100", "POLYGON_HISTORY_DAYS": "400"}),
	})
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_LAMBDA":   lambdaURL,
		"AWS_ENDPOINT_URL_DYNAMODB": db.Endpoint, "AWS_ENDPOINT_URL_SQS": sq.Endpoint(), "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}

	code, stdout, stderr := indicRun(t, "", "status", "--stage", "dev", "--json")
	if code != 0 {
		t.Fatalf("status --stage dev: exit %d: %s", code, stderr)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Stage != "dev" || len(rep.Missing) != 7 || len(rep.Tickers) != 0 || rep.Analysis != nil {
		t.Errorf("status of an empty dev stage: %s", stdout)
	}

	code, stdout, stderr = indicRun(t, "", "invoke", "processTickers", "--stage", "dev", "--event", "{}")
	if code != 0 {
		t.Fatalf("invoke --stage dev: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "with the environment of zsm-processTickers-dev as deployed") {
		t.Errorf("invoke does not say whose environment it runs with: %s", stderr)
	}
	var sum struct{ Queued, DayMessages int }
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.Queued != 7 || sum.DayMessages != 1 {
		t.Errorf("invoke printed %s (%v), want 7 tickers and the day message queued", stdout, err)
	}
	if c := sq.Counts("ticker-processing-queue-dev.fifo"); c.Visible != 8 {
		t.Errorf("dev queue holds %+v, want 8", c)
	}

	// processTicker starts only with both queue URLs (re-queue and dead-letter
	// path), which invoke reads from the deployed configuration; a poison
	// record is acknowledged without a market-data call. A key and a log
	// level from the shell take precedence, and the command says so.
	sq.CreateQueue("ticker-processing-dlq-dev.fifo")
	t.Setenv("POLYGON_API_KEY", "test-key")
	// A queue URL left in the shell must not pair with a missing DLQ URL:
	// the stage's own URLs win.
	t.Setenv("TICKER_QUEUE_URL", "http://127.0.0.1:1/000000000000/other.fifo")
	poison := `{"Records":[{"messageId":"m1","body":"not json","eventSourceARN":"arn:aws:sqs:us-east-1:000000000000:ticker-processing-queue-dev.fifo"}]}`
	code, stdout, stderr = indicRun(t, "", "invoke", "processTicker", "--stage", "dev", "--event", poison)
	if code != 0 {
		t.Fatalf("invoke processTicker --stage dev: exit %d: %s", code, stderr)
	}
	var resp struct{ BatchItemFailures []any }
	if err := json.Unmarshal([]byte(stdout), &resp); err != nil || resp.BatchItemFailures == nil || len(resp.BatchItemFailures) != 0 {
		t.Errorf("processTicker answered %s (%v), want an empty batchItemFailures", stdout, err)
	}
	if !strings.Contains(stderr, "secret zsm-seven/dev/api-keys") || !strings.Contains(stderr, "from your environment: POLYGON_API_KEY") {
		t.Errorf("invoke does not name the deployed secret and the shell's key: %s", stderr)
	}
	if code, _, stderr = indicRun(t, "", "invoke", "analyzePortfolio", "--stage", "dev", "--event", "{}"); code == 0 || !strings.Contains(stderr, "zsm-analyzePortfolio-dev") {
		t.Errorf("a function that is not deployed: exit %d: %s", code, stderr)
	}
}

// fakeLambda serves GetFunctionConfiguration (GET
// /2015-03-31/functions/{name}/configuration, Lambda's REST-JSON shape) for
// the given functions' environments; any other function is 404
// ResourceNotFoundException, as Lambda answers.
func fakeLambda(t *testing.T, envs map[string]map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/2015-03-31/functions/")
		name, ok2 := strings.CutSuffix(name, "/configuration")
		env, known := envs[name]
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet || !ok || !ok2 || !known {
			w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"Type":"User","message":"Function not found: arn:aws:lambda:us-east-1:000000000000:function:%s"}`, name)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"FunctionName": name, "Runtime": "provided.al2023",
			"Environment": map[string]any{"Variables": env}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Every flag in every command's help reads "-name" or "-name TYPE": the flag
// package takes a back-quoted word in a usage string as the argument's name,
// so "kept by `zsm run`" once printed as "-data zsm run".
func TestHelpFlagLines(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, _ := indicRun(t, "", c.name, "--help")
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			_, flags, ok := strings.Cut(stdout, "\nFlags:\n")
			if !ok {
				return
			}
			for _, line := range strings.Split(flags, "\n") {
				if !strings.HasPrefix(line, "  -") {
					continue
				}
				if f := strings.Fields(line); len(f) > 2 {
					t.Errorf("flag line %q: argument name is more than one word", line)
				}
			}
		})
	}
}

// Progress lines come from the use case's record events, never from log
// text: each outcome reads as what became of the ticker.
func TestDescribeRecord(t *testing.T) {
	rsi, ma := 64.0, 202.316
	row := &pipeline.Row{Ticker: "AAPL", Snapshot: indicators.Snapshot{Price: 218.2345, RSI: &rsi, MA50: &ma, AsOf: "2026-11-27"}}
	down := errors.New("daily bars DOWN: polygon HTTP 503")
	tests := []struct {
		rec  pipeline.Record
		want string
	}{
		{pipeline.Record{Ticker: "AAPL", Outcome: pipeline.Stored, Row: row}, "ticker refreshed (price=218.23 rsi=64.00 ma50=202.32 asOf=2026-11-27)"},
		{pipeline.Record{Ticker: "NEW", Outcome: pipeline.Stored, Row: &pipeline.Row{Snapshot: indicators.Snapshot{Price: 10, AsOf: "2026-11-27"}}}, "ticker refreshed (price=10.00 rsi=- ma50=- asOf=2026-11-27)"},
		{pipeline.Record{Ticker: "NEW", Outcome: pipeline.Stored, Row: &pipeline.Row{Snapshot: indicators.Snapshot{Price: 10, AsOf: "2026-11-27"}, Partial: true}},
			"ticker refreshed, partial while its window is filled (absent: what the missing sessions hold) (price=10.00 rsi=- ma50=- asOf=2026-11-27)"},
		{pipeline.Record{Ticker: "ODD", Outcome: pipeline.Stored, TickerCall: "absent from every grouped answer of the window", Row: row},
			"ticker refreshed, its own bars fetched first: absent from every grouped answer of the window (price=218.23 rsi=64.00 ma50=202.32 asOf=2026-11-27)"},
		{pipeline.Record{Ticker: "DOWN", Outcome: pipeline.Requeued, Attempt: 2, Err: down},
			"transient error: message re-queued at the tail of the queue attempt=3 (daily bars DOWN: polygon HTTP 503) [warn]"},
		{pipeline.Record{Ticker: "DOWN", Outcome: pipeline.DeadLettered, Attempt: 4, Err: down},
			"ticker dead-lettered: transient errors on every attempt attempt=5 (daily bars DOWN: polygon HTTP 503) [error]"},
		{pipeline.Record{Ticker: "NONE", Outcome: pipeline.Permanent, Err: errors.New("no data")}, "ticker not refreshed: permanent error, message acknowledged (no data) [error]"},
		{pipeline.Record{Outcome: pipeline.Permanent, Err: errors.New("poison message: not JSON")}, "poison message acknowledged (poison message: not JSON) [warn]"},
		{pipeline.Record{Ticker: "MSFT", Outcome: pipeline.Deferred, Err: pipeline.ErrFIFOOrder}, "handed back unstarted (an earlier record of the FIFO batch was handed back)"},
		{pipeline.Record{Ticker: "SLOW", Outcome: pipeline.Transient, Err: down}, "ticker not refreshed: transient error, handed back (daily bars DOWN: polygon HTTP 503) [warn]"},
	}
	for _, tt := range tests {
		if got := describeRecord(tt.rec); got != tt.want {
			t.Errorf("%v %s:\n got %q\nwant %q", tt.rec.Outcome, tt.rec.Ticker, got, tt.want)
		}
	}
	var lines []string
	p := &recordProgress{total: 2, say: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }}
	p.observe(tests[4].rec)
	p.observe(tests[0].rec)
	if want := []string{"  [0/2] DOWN   " + tests[4].want, "  [1/2] AAPL   " + tests[0].want}; !slices.Equal(lines, want) {
		t.Errorf("progress %q, want %q", lines, want)
	}
}

func TestDeadLetterTickers(t *testing.T) {
	got := deadLetterTickers([]string{
		`{"v":1,"ticker":"AAPL","runId":"r1","enqueuedAt":"2026-11-27T22:00:00Z"}`,
		`not a message, and longer than forty characters in all`,
	})
	want := `2 messages: AAPL "not a message, and longer than forty cha…"`
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// cancelOn cancels a context when a given text is written to it.
type cancelOn struct {
	bytes.Buffer
	text   string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	n, err := c.Buffer.Write(p)
	if strings.Contains(c.Buffer.String(), c.text) {
		c.cancel()
	}
	return n, err
}

// Ctrl-C while an invoked handler waits: the handler's answer (the record
// handed back) is printed, but the exit status says the invocation was cut
// short, as `zsm run` does.
func TestInvokeInterrupted(t *testing.T) {
	t.Setenv("POLYGON_API_KEY", "")
	t.Setenv("XAI_API_KEY", "")
	t.Setenv("POLYGON_CALLS_PER_MINUTE", "1") // the first call waits a minute
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &cancelOn{text: "waiting for the rate limit", cancel: cancel}
	var stdout bytes.Buffer
	event := `{"Records":[{"messageId":"m1","body":"{\"v\":1,\"ticker\":\"AAPL\",\"runId\":\"r\",\"enqueuedAt\":\"2026-11-27T22:00:00Z\"}","eventSource":"aws:sqs"}]}`
	code := zsm(ctx, []string{"invoke", "processTicker", "--memory", "--event", event}, &stdout, stderr)
	if code != 130 {
		t.Fatalf("exit %d, want 130\nstdout %s\nstderr %s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "zsm: invoke interrupted") {
		t.Errorf("stderr does not say the invocation was interrupted:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), `"itemIdentifier": "m1"`) {
		t.Errorf("stdout %s: want the record handed back", stdout.String())
	}
}

// seedPortfolios writes n portfolios P00… of three sample symbols each, an
// empty one and one whose name the analysis refuses, into the shared tables
// of the local store under dir, in portfolio-api's documented shape.
func seedPortfolios(t *testing.T, dir string, n int) {
	t.Helper()
	ctx := context.Background()
	st, err := devstack.Start(ctx, devstack.Options{DataDir: dir, NoQueue: true, NoMarketData: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	put := func(table string, item map[string]types.AttributeValue) {
		if _, err := st.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	pf, pos := deploy.UserPortfolios.Name(st.Stage), deploy.PortfolioPositions.Name(st.Stage)
	for i := range n {
		id := fmt.Sprintf("p%02d", i)
		for j := range 3 {
			sym := devstack.SampleSymbols[(i+j)%len(devstack.SampleSymbols)]
			put(pos, map[string]types.AttributeValue{"portfolioId": s(id), "positionId": s(sym), "ticker": s(sym),
				"quantity": &types.AttributeValueMemberN{Value: strconv.Itoa(1 + i + j)}, "costBasis": &types.AttributeValueMemberN{Value: strconv.Itoa(100 * (1 + j))}})
		}
		put(pf, map[string]types.AttributeValue{"userId": s("u" + id), "portfolioId": s(id), "name": s(fmt.Sprintf("P%02d", i))})
	}
	put(pf, map[string]types.AttributeValue{"userId": s("u-empty"), "portfolioId": s("empty"), "name": s("Empty")})
	put(pf, map[string]types.AttributeValue{"userId": s("u-bad"), "portfolioId": s("bad"), "name": s("Bad\nName")})
}

// `zsm run --portfolio '*'` analyzes every portfolio through the analysis
// queue, as deployed, and `zsm status --portfolio '*'` shows each one's
// latest analysis; a second run pays nothing and stores nothing new.
func TestRunAllPortfoliosThroughTheQueue(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "dynalite")
	seedPortfolios(t, data, 30)
	o := runOptions{dataDir: data, logDir: filepath.Join(dir, "logs"), portfolio: "*"}
	out, errOut := runOnce(t, o)
	for _, want := range []string{
		"fan-out: 32 portfolios queued on portfolio-analysis-queue-local, never analyzed first",
		`skipped "Bad\nName"`,
		"consumed as deployed: one portfolio per invocation, at most 10 at once, each with a 5m0s deadline",
		"shortened locally: a portfolio handed back is received again at once (deployed: after the 30m0s visibility timeout",
		"32 invocations", "31 fallback, 0 reused, 1 skipped, 0 handed back (retried), 0 dead-lettered",
		`"Empty": skipped: portfolio "Empty": portfolio has no valid positions`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("progress lacks %q:\n%s", want, errOut)
		}
	}
	if m := regexp.MustCompile(`invocations, at most (\d+) at once: `).FindStringSubmatch(errOut); m == nil {
		t.Errorf("peak concurrency not reported:\n%s", errOut)
	} else if n, _ := strconv.Atoi(m[1]); n < 1 || n > 10 {
		t.Errorf("peak concurrency %d, want 1..10", n)
	}
	for _, want := range []string{"PORTFOLIO", "P00", "P29", "ZSM Seven", "33 portfolios: 0 ok, 31 fallback, 2 never analyzed."} {
		if !strings.Contains(out, want) {
			t.Errorf("result lacks %q:\n%s", want, out)
		}
	}

	code, stdout, stderr := indicRun(t, "", "status", "--json", "--portfolio", "*", "--data", data)
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, stderr)
	}
	var rep struct {
		Analyses []struct {
			Portfolio, Model, Status, DataAsOf string
			Tickers                            []struct {
				Ticker, Signal, Action, Confidence string
				Score                              *int
			}
			TopActions []struct{ Ticker, Action string }
		}
		Analysis json.RawMessage
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, stdout)
	}
	if len(rep.Analyses) != 33 || rep.Analysis != nil {
		t.Fatalf("%d analyses, want one per portfolio (33); analysis %s", len(rep.Analyses), rep.Analysis)
	}
	none := 0
	for _, a := range rep.Analyses {
		if a.Status == "none" {
			none++
			continue
		}
		if a.Status != "fallback" || a.Model != "rules-v3" || a.DataAsOf == "" || len(a.TopActions) != 3 {
			t.Errorf("analysis %+v", a)
		}
		want := 3
		if a.Portfolio == "ZSM Seven" {
			want = 7
		}
		if len(a.Tickers) != want {
			t.Errorf("%s: %d tickers, want %d", a.Portfolio, len(a.Tickers), want)
		}
		for _, tk := range a.Tickers {
			if tk.Score == nil || tk.Signal == "" || tk.Action == "" || tk.Confidence == "" {
				t.Errorf("%s ticker %+v", a.Portfolio, tk)
			}
		}
	}
	if none != 2 {
		t.Errorf("%d portfolios never analyzed, want 2 (Empty, Bad\\nName)", none)
	}
	code, stdout, _ = indicRun(t, "", "status", "--portfolio", "*", "--data", data)
	if code != 0 || !strings.Contains(stdout, "P07") || !strings.Contains(stdout, "AVG SCORE") {
		t.Errorf("status table: exit %d\n%s", code, stdout)
	}

	_, errOut = runOnce(t, o)
	if !strings.Contains(errOut, "0 ok, 0 fallback, 31 reused") {
		t.Errorf("second run did not reuse every analysis:\n%s", errOut)
	}
	st, err := devstack.Start(context.Background(), devstack.Options{DataDir: data, NoQueue: true, NoMarketData: true, NoSeed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	cnt, err := st.DB.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(deploy.PortfolioAnalyses.Name(st.Stage)), Select: "COUNT"})
	if err != nil || cnt.Count != 31 {
		t.Errorf("%v analyses stored after two runs (%v), want 31", cnt.Count, err)
	}
}

// The new outcomes of the stored-history night read as what happened.
func TestDescribeNightRecords(t *testing.T) {
	for _, c := range []struct {
		rec  pipeline.Record
		want string
	}{
		{pipeline.Record{Date: "2026-11-25", Outcome: pipeline.DayDone, Day: &pipeline.DayResult{Status: pipeline.DayStored, Held: 7, Present: 7, Rows: 11, Skipped: 4,
			Revised: []string{"2026-11-24"}, SplitsFrom: "2026-10-26", SplitsTo: "2026-11-25"}},
			"day stored: 7 of 7 held tickers in the grouped answer (11 rows, 4 skipped), 0 absent; fetched again after its close: 2026-11-24; splits 2026-10-26..2026-11-25: none new"},
		{pipeline.Record{Date: "2026-11-25", Outcome: pipeline.DayDone, Day: &pipeline.DayResult{Status: pipeline.DayStored, Held: 7, Present: 6, Missing: 1, Rows: 11, Skipped: 4,
			SplitsFrom: "2025-11-24", SplitsTo: "2026-11-25", Splits: []string{"AAPL"}, Retracted: 1, Needed: 252, Planned: 252}},
			"day stored: 6 of 7 held tickers in the grouped answer (11 rows, 4 skipped), 1 absent; splits 2025-11-24..2026-11-25: AAPL (1 withdrawn); the window lacks 252 sessions: fill queued (one grouped call each, then the tickers again)"},
		{pipeline.Record{Date: "2026-11-25", Outcome: pipeline.DayDone, Day: &pipeline.DayResult{Status: pipeline.DayNotPublished}},
			"Polygon has not published the day yet (grouped daily: resultsCount 0): tickers keep their last good row until the catch-up [warn]"},
		{pipeline.Record{Date: "2026-11-25", Outcome: pipeline.DayDone, Day: &pipeline.DayResult{Status: pipeline.DayStored, Needed: 3}},
			"day stored before; the window lacks 3 sessions: its fill is queued already"},
		{pipeline.Record{Date: "2026-11-25", Outcome: pipeline.DayDone, Day: &pipeline.DayResult{Status: pipeline.DayFallback}},
			"grouped daily not authorized for this key's plan: every ticker fetches its own bars tonight [error]"},
		{pipeline.Record{Date: "2026-11-25", Outcome: pipeline.DayDone, Day: &pipeline.DayResult{Status: pipeline.DayStored, AlreadyDone: true}},
			"day already refreshed by this message: acknowledged without a call"},
		{pipeline.Record{Date: "2026-03-02", Outcome: pipeline.FillDone, Fill: &pipeline.FillResult{Session: "2026-03-02", Night: "2026-11-25", Part: 180, Parts: 252, Status: "stored", Calls: 1}},
			"the window of 2026-11-25: session 2026-03-02 stored; 180 of 252 sessions filled, 0 market-data calls so far"},
		{pipeline.Record{Ticker: "AAPL", Date: "2026-11-25", Outcome: pipeline.Current}, "row of 2026-11-25 already stored: acknowledged without a call"},
		{pipeline.Record{Ticker: "MSFT", Date: "2026-11-25", Outcome: pipeline.Stale, Err: pipeline.ErrNoBarOfDay},
			"no bar of 2026-11-25 yet (no bar of the ticker on that day): the last good row is kept [warn]"},
		{pipeline.Record{Ticker: "AAPL", Outcome: pipeline.Refused, Err: errors.New("HTTP 401 ERROR: Unknown API Key")},
			"Polygon refused the key or the plan: the run stops, handed back (HTTP 401 ERROR: Unknown API Key) [error]"},
	} {
		if got := describeRecord(c.rec); got != c.want {
			t.Errorf("%v:\n got %q\nwant %q", c.rec.Outcome, got, c.want)
		}
	}
	if l := (pipeline.Record{Date: "2026-11-25", Day: &pipeline.DayResult{}}).Label(); l != "day 2026-11-25" {
		t.Errorf("label %q", l)
	}
}

// --seed replaces the local portfolios; a bad file is one line naming the
// entry, and nothing is written (not even the sample portfolio).
func TestRunSeed(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"portfolios":[{"name":"A","positions":[{"ticker":"AAPL"}]},{"name":"B","positions":[{"ticker":"BRK-"}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "dynalite")
	code, _, stderr := indicRun(t, "", "run", "--seed", bad, "--data", data, "--logs", filepath.Join(dir, "logs"))
	if want := "zsm: run: --seed " + bad + `: portfolios[1].positions[0].ticker "BRK-": trailing separator` + "\n"; code != 1 || stderr != want {
		t.Fatalf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a bad seed file started the store (%v)", err)
	}
	code, _, stderr = indicRun(t, "", "run", "--seed", filepath.Join(dir, "missing.json"), "--memory")
	if code != 1 || !strings.Contains(stderr, "missing.json: no such file or directory") {
		t.Errorf("missing file: exit %d %q", code, stderr)
	}

	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{"portfolios":[{"name":"Income","positions":[{"ticker":"KO","quantity":100,"costBasis":5900},{"ticker":"brk b","quantity":2}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	seed, err := devstack.ParseSeed(mustRead(t, good))
	if err != nil {
		t.Fatal(err)
	}
	o := runOptions{logDir: filepath.Join(dir, "logs"), portfolio: "Income", seed: seed}
	out, progress := runOnce(t, o)
	rows := parseTable(t, out)
	if len(rows) != 2 || rows["KO"] == nil || rows["BRK.B"] == nil {
		t.Fatalf("table for the seed:\n%s", out)
	}
	if !strings.Contains(progress, "portfolios replaced by the seed file: 1 portfolios, 2 positions") || !strings.Contains(out, `Analysis of "Income"`) {
		t.Errorf("output:\n%s\n%s", progress, out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRunDateErrors(t *testing.T) {
	future := marketdata.AddDays(marketdata.LastTradingDay(time.Now()), 7)
	for _, c := range []struct{ date, want string }{
		{"2026-11-26", "zsm: run: --date 2026-11-26: not a trading day (NYSE closed: Thanksgiving Day)"},
		{"2026-11-28", "zsm: run: --date 2026-11-28: not a trading day (a Saturday)"},
		{"2025-01-09", "not a trading day (NYSE closed: National Day of Mourning for President Carter)"},
		{"26-11-25", "not a YYYY-MM-DD date"},
		{"1999-12-30", "zsm: run: --date 1999-12-30: before 2000, where the NYSE calendar this service knows begins"},
		{future, "in the future: the last completed trading day is " + marketdata.LastTradingDay(time.Now())},
	} {
		code, _, stderr := indicRun(t, "", "run", "--memory", "--date", c.date)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("--date %s: exit %d %q, want 2 and one line containing %q", c.date, code, stderr, c.want)
		}
	}
}

// The calendar has no end and reaches back to 2000: a night years before
// the old 2024–2028 holiday table runs like any other. 2012-10-31 is the
// first session after Hurricane Sandy closed the NYSE for two days.
func TestRunDateLongAgo(t *testing.T) {
	code, stdout, stderr := indicRun(t, "", "run", "--memory", "--logs", t.TempDir(), "--date", "2012-10-31")
	if code != 0 || !strings.Contains(stdout, "data as of 2012-10-31 (fresh)") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	rows := parseTable(t, stdout)
	if len(rows) != len(devstack.SampleSymbols) {
		t.Errorf("%d rows, want one per sample ticker:\n%s", len(rows), stdout)
	}
	for sym, r := range rows {
		if r[6] != "2012-10-31" {
			t.Errorf("%s: row of %s", sym, r[6])
		}
	}
}

// Consecutive --date nights against one store behave as consecutive nights
// in production: the first fills the window of the indicators (one grouped
// call per session), the next make three calls (the day, the day before
// again, the splits), a night after a missed one a call more, and each row is
// of its night.
func TestRunConsecutiveDates(t *testing.T) {
	dir := t.TempDir()
	o := runOptions{dataDir: filepath.Join(dir, "dynalite"), logDir: filepath.Join(dir, "logs"), portfolio: devstack.SamplePortfolio}
	for i, night := range []struct{ date, calls string }{
		{"2026-11-20", "market-data calls: 254 (253 grouped, 1 splits, 0 per-ticker)"},
		{"2026-11-24", "market-data calls: 4 (3 grouped, 1 splits, 0 per-ticker)"}, // 2026-11-23 missed
		{"2026-11-25", "market-data calls: 3 (2 grouped, 1 splits, 0 per-ticker)"},
	} {
		o.date = night.date
		out, progress := runOnce(t, o)
		if !strings.Contains(progress, night.calls) || !strings.Contains(progress, "tickers queued for "+night.date) {
			t.Errorf("night %d (%s):\n%s", i, night.date, progress)
		}
		for sym, r := range parseTable(t, out) {
			if r[6] != night.date {
				t.Errorf("%s: row of %s on the night of %s", sym, r[6], night.date)
			}
		}
		if !strings.Contains(out, "data as of "+night.date+" (fresh)") {
			t.Errorf("analysis of the night of %s:\n%s", night.date, out)
		}
	}
}

// A day Polygon has not published by 21:30: the first pass keeps the last
// good rows; the catch-up (here at once, in production at 23:30) fetches it.
func TestRunCatchUp(t *testing.T) {
	dir := t.TempDir()
	o := runOptions{dataDir: filepath.Join(dir, "dynalite"), logDir: filepath.Join(dir, "logs"), portfolio: devstack.SamplePortfolio,
		date: "2026-11-23", sandbox: fakepolygon.Options{PublishDelay: 6 * time.Hour}}
	_, progress := runOnce(t, o)
	if !strings.Contains(progress, "catch-up          7 tickers of 2026-11-23 still without a row and the day again") ||
		!strings.Contains(progress, "Polygon has not published the day yet") || !strings.Contains(progress, "in production the processTickers-catch-up schedule runs this at 23:30 New York") {
		t.Errorf("progress:\n%s", progress)
	}
}

// A refused key stops the run: non-zero exit, the last lines say so, and
// nothing is acknowledged.
func TestRunKeyRefused(t *testing.T) {
	poly := fakepolygon.New(t, fakepolygon.Options{Key: "the-right-key"})
	host := map[string]string{"POLYGON_API_KEY": "a-revoked-key", "POLYGON_BASE_URL": poly.URL, "POLYGON_CALLS_PER_MINUTE": "0"}
	var out, errOut bytes.Buffer
	o := runOptions{logDir: t.TempDir(), portfolio: devstack.SamplePortfolio}
	err := runPipeline(context.Background(), o, func(k string) (string, bool) { v, ok := host[k]; return v, ok }, &out, &errOut)
	if !errors.Is(err, errKeyRefused) || !strings.Contains(err.Error(), "8 messages handed back unacknowledged; fix POLYGON_API_KEY") {
		t.Fatalf("err %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	last := strings.Join(lines[len(lines)-3:], "\n")
	for _, want := range []string{"Polygon refused the API key (", "Unknown API Key", "none acknowledged", "Fix POLYGON_API_KEY"} {
		if !strings.Contains(last, want) {
			t.Errorf("last lines lack %q:\n%s", want, last)
		}
	}
	if poly.Calls() != 2 || strings.Contains(errOut.String(), "a-revoked-key") {
		t.Errorf("%d calls (want the grouped call and its one retry); key in output: %v", poly.Calls(), strings.Contains(errOut.String(), "a-revoked-key"))
	}
	if code := exitStatusOf(fmt.Errorf("run: %w", err), &bytes.Buffer{}); code != 1 {
		t.Errorf("exit status %d", code)
	}
}

// The local night is the contract's schedules: moved there, the night moves
// here, in order, time and input, with no edit to zsm run. (infra creates
// the same schedules: its stack tests read them from the contract too.)
func TestRunNightFollowsTheSchedules(t *testing.T) {
	saved := deploy.Schedules
	t.Cleanup(func() { deploy.Schedules = saved })
	catchUp, analysis := deploy.CatchUp, deploy.NightlyAnalysis
	catchUp.Hour, catchUp.Minute = 22, 45
	analysis.Hour, analysis.Minute = 0, 30
	// Listed out of order: the night is ordered by firing time.
	deploy.Schedules = []deploy.Schedule{analysis, deploy.NightlyTickers, catchUp}

	dir := t.TempDir()
	o := runOptions{logDir: filepath.Join(dir, "logs"), portfolio: devstack.SamplePortfolio, date: "2026-11-20",
		sandbox: fakepolygon.Options{PublishDelay: 6 * time.Hour}}
	_, progress := runOnce(t, o)
	want := "night      2026-11-20, as the schedules run it (New York time): processTickers at 21:30, processTickers-catch-up at 22:45, analyzePortfolio at 00:30 the morning after"
	if !strings.Contains(progress, want) {
		t.Errorf("progress lacks %q:\n%s", want, progress)
	}
	// The day, unpublished at 21:30, is fetched by the moved catch-up.
	if !strings.Contains(progress, "in production the processTickers-catch-up schedule runs this at 22:45 New York") {
		t.Errorf("the catch-up did not run as the moved schedule:\n%s", progress)
	}
	if strings.Index(progress, "catch-up ") > strings.Index(progress, "analyzePortfolio  ") {
		t.Errorf("the analysis ran before the catch-up:\n%s", progress)
	}
}

// A bad variable fails the run at once, with the one line of the function
// that reads it, before any function has run.
func TestRunRefusesABadVariableFirst(t *testing.T) {
	host := map[string]string{"XAI_RESERVE": "soon"}
	var out, errOut bytes.Buffer
	o := runOptions{logDir: t.TempDir(), portfolio: devstack.SamplePortfolio}
	err := runPipeline(context.Background(), o, func(k string) (string, bool) { v, ok := host[k]; return v, ok }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "analyzePortfolio: configuration: XAI_RESERVE must be a duration") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line naming the function and the variable", err)
	}
	if strings.Contains(errOut.String(), "processTickers    ") {
		t.Errorf("a function ran before the configuration was checked:\n%s", errOut.String())
	}
}
