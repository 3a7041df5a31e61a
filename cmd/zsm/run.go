package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/functions"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/tickerdata"
)

const runSynopsis = "zsm run [--memory | --data DIR] [--logs DIR] [--portfolio NAME] [--force]"

const runDescription = `Runs the nightly pipeline locally, with no AWS account and no keys: starts
dynalite (local DynamoDB) with the service's four tables, seeds the sample
portfolio "ZSM Seven" into the shared tables when absent, then runs the same
handlers the Lambdas run: processTickers (queues one message per ticker on an
in-process SQS queue) → processTicker (fed SQS batches of up to 10, failed
records requeued as Lambda does) → analyzePortfolio. It ends with a table of
price, RSI(14), MA50, score and signal per ticker.

Market data: with POLYGON_API_KEY set it calls Polygon (POLYGON_BASE_URL,
POLYGON_CALLS_PER_MINUTE, default 5 per minute: about 12 s per ticker);
without, a built-in sandbox serves deterministic SAMPLE prices.
Analysis: with XAI_API_KEY set it calls xAI (XAI_API_URL, XAI_MODEL); without,
the rules analyst scores the portfolio.

Data is kept under .local/dynalite between runs (zsm status reads it); a second
run overwrites the same trading day's rows and reuses a stored analysis of the
same data. The functions' JSON logs go to a file under .local/logs.
Ctrl-C stops everything it started.`

// runOptions are the parsed flags of `zsm run`.
type runOptions struct {
	dataDir   string // "" = in memory
	logDir    string
	portfolio string
	force     bool
}

// runRun implements `zsm run`.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCmdFlags("run", runSynopsis, runDescription, stdout)
	memory := fs.Bool("memory", false, "hold DynamoDB data in memory (nothing kept, nothing for zsm status to read)")
	data := fs.String("data", devstack.DefaultDataDir, "keep DynamoDB data under this directory")
	logDir := fs.String("logs", devstack.DefaultLogDir, "write the functions' JSON logs to a file in this directory")
	portfolio := fs.String("portfolio", devstack.SamplePortfolio, "portfolio to analyze")
	force := fs.Bool("force", false, "analyze again even if an analysis of the same data is stored")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("run: unexpected argument %.40q (see zsm run --help)", fs.Arg(0))
	}
	opts := runOptions{dataDir: *data, logDir: *logDir, portfolio: *portfolio, force: *force}
	if *memory {
		opts.dataDir = ""
	}
	err := runPipeline(ctx, opts, os.LookupEnv, stdout, stderr)
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)) {
		fmt.Fprintln(stderr, "zsm: run interrupted; dynalite and the local servers are stopped")
		return exitCode(130)
	}
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

// runPipeline starts the local stack, runs the three handlers in process and
// prints the result table on stdout; progress goes to stderr.
func runPipeline(ctx context.Context, o runOptions, host func(string) (string, bool), stdout, stderr io.Writer) error {
	started := time.Now()
	say := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }

	say("zsm run: the nightly pipeline on a local stack (no AWS account needed); Ctrl-C stops it")
	stack, err := devstack.Start(ctx, devstack.Options{DataDir: o.dataDir, Host: host})
	if err != nil {
		return err
	}
	// Stop runs on every path out of here, errors and Ctrl-C included (the
	// caller's context is cancelled on SIGINT/SIGTERM and every step below
	// returns promptly on it).
	defer stack.Stop()
	where := "held in memory (gone when this run ends; zsm status will have nothing to read)"
	if o.dataDir != "" {
		where = "kept under " + o.dataDir + " (use --memory to keep nothing)"
	}
	say("dynalite   %s, data %s", stack.Dynalite.Endpoint, where)
	say("tables     %s, %s, %s, %s (stage %s)", stack.Env["TICKER_DATA_TABLE"], stack.Env["PORTFOLIO_ANALYSES_TABLE"],
		stack.Env["USER_PORTFOLIOS_TABLE"], stack.Env["PORTFOLIO_POSITIONS_TABLE"], stack.Stage)
	say("queue      %s (in process)", stack.QueueURL)
	pace := stack.CallsPerMinute()
	if stack.UsingSandbox() {
		say("prices     %s (set POLYGON_API_KEY for Polygon)", fakepolygon.SampleLabel)
	} else {
		base := stack.Env["POLYGON_BASE_URL"]
		if base == "" {
			base = deploy.DefaultPolygonBaseURL + " (the default)"
		}
		say("prices     Polygon at %s (POLYGON_API_KEY is set)", base)
	}
	switch {
	case pace > 0:
		say("pacing     %d Polygon calls per minute: about %s per ticker (POLYGON_CALLS_PER_MINUTE)", pace, (time.Minute / time.Duration(pace)).Round(time.Second))
	case stack.UsingSandbox():
		say("pacing     none: the sandbox has no rate limit (set POLYGON_CALLS_PER_MINUTE to pace it)")
	default:
		say("pacing     none (POLYGON_CALLS_PER_MINUTE=0: a paid plan)")
	}
	if _, ok := stack.Env["XAI_API_KEY"]; ok {
		model := stack.Env["XAI_MODEL"]
		if model == "" {
			model = "the default model"
		}
		say("analysis   xAI, %s", model)
	} else {
		say("analysis   rules analyst (set XAI_API_KEY for xAI Grok)")
	}

	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	logPath := filepath.Join(o.logDir, "run-"+started.UTC().Format("20060102T150405Z")+".jsonl")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logFile.Close()
	say("logs       %s (the functions' JSON logs)", logPath)

	restore := stack.ApplyProcessEnv()
	defer restore()

	// 1. processTickers, as the Scheduler invokes it.
	say("")
	t0 := time.Now()
	tap := newLogTap(logFile)
	pts, err := functions.ProcessTickers(ctx, stack.Lookup, tap)
	if err != nil {
		return fmt.Errorf("processTickers: %w", err)
	}
	ictx, cancel := invocationContext(ctx, deploy.ProcessTickers)
	summary, err := pts(ictx, schedulerEvent())
	cancel()
	if err != nil {
		return fmt.Errorf("processTickers: %w (logs: %s)", err, logPath)
	}
	queued := stack.SQS.Counts(devstack.QueueName).Visible
	say("processTickers    %d tickers queued in %s (scanned %d items: %d symbols, %d invalid, %d not accepted; run %s)",
		summary.Queued, since(t0), summary.ItemsScanned, summary.SymbolsFound, summary.Invalid, summary.Failed, summary.RunID)
	if pace > 0 && queued > 0 {
		say("                  at %d Polygon calls per minute, %d tickers take about %s", pace, queued, (time.Duration(queued) * time.Minute / time.Duration(pace)).Round(time.Second))
	}

	// 2. processTicker, fed batches as the event source mapping does.
	t1 := time.Now()
	pt, err := processTickerHandler(ctx, stack, tap)
	if err != nil {
		return fmt.Errorf("processTicker: %w", err)
	}
	total, done, settled := queued, 0, 0
	tap.onRecord = func(rec map[string]any) {
		tk, _ := rec["ticker"].(string)
		msg, _ := rec["msg"].(string)
		if tk == "" || msg == "" {
			return
		}
		level, _ := rec["level"].(string)
		if msg == "ticker refreshed" || strings.HasPrefix(msg, "ticker not refreshed: permanent") || strings.HasPrefix(msg, "ticker dead-lettered") {
			settled++
		}
		line := fmt.Sprintf("  [%d/%d] %-6s %s%s", settled, total, tk, msg, details(rec))
		if level == "WARN" || level == "ERROR" {
			line += " [" + strings.ToLower(level) + "]"
		}
		say("%s", line)
	}
	totals, err := stack.SQS.Drain(ctx, devstack.QueueName, localsqs.MaxBatch, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		left := stack.SQS.Counts(devstack.QueueName).Visible
		say("processTicker     batch of %d (%d of %d done, %d more queued)%s", len(ev.Records), done, total, left, batchEstimate(len(ev.Records), pace))
		ictx, cancel := invocationContext(ctx, deploy.ProcessTicker)
		defer cancel()
		resp, herr := pt(ictx, ev)
		done += len(ev.Records) - len(resp.BatchItemFailures)
		if herr != nil {
			say("processTicker     batch failed: %v (every record goes back to the queue)", herr)
		} else if n := len(resp.BatchItemFailures); n > 0 {
			say("processTicker     %d of %d records handed back to the queue (batchItemFailures)", n, len(ev.Records))
		}
		return resp, herr
	})
	tap.onRecord = nil
	if err != nil {
		return fmt.Errorf("processTicker: %w", err)
	}
	say("processTicker     %d batches, %d messages done, %d retried, %d dead-lettered in %s",
		totals.Batches, totals.Deleted, totals.Requeued, totals.DeadLettered, since(t1))
	// Moved there by the receive count, or sent there by processTicker after
	// a record's last attempt.
	dead := append(stack.SQS.DeadLetters(devstack.QueueName), stack.SQS.Visible(devstack.DLQName)...)
	if len(dead) > 0 {
		say("                  dead-letter queue: %s", deadLetterTickers(dead))
	}

	// 3. analyzePortfolio, as the Scheduler invokes it.
	t2 := time.Now()
	ap, err := functions.AnalyzePortfolio(ctx, stack.Lookup, tap)
	if err != nil {
		return fmt.Errorf("analyzePortfolio: %w", err)
	}
	ictx, cancel = invocationContext(ctx, deploy.AnalyzePortfolio)
	res, err := ap(ictx, analyzer.Event{PortfolioName: o.portfolio, Force: o.force})
	cancel()
	if err != nil {
		return fmt.Errorf("analyzePortfolio: %w (logs: %s)", err, logPath)
	}
	for _, p := range res.Portfolios {
		note := p.Status
		if p.Status == analyzer.OutcomeReused {
			note = "reused the stored analysis of the same data"
		}
		say("analyzePortfolio  %q: %s, model %s, data as of %s in %s", p.Portfolio, note, p.Model, p.DataAsOf, since(t2))
		if p.Error != "" {
			say("                  error: %s", p.Error)
		}
	}

	rep, err := gatherStatus(ctx, stack.DB, stack.Stage, o.portfolio, where, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	printTable(stdout, rep)
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "  data: DynamoDB (dynalite), %s; tables %s and %s\n", where, stack.Env["TICKER_DATA_TABLE"], stack.Env["PORTFOLIO_ANALYSES_TABLE"])
	fmt.Fprintf(stdout, "  logs: %s\n", logPath)
	fmt.Fprintf(stdout, "  done in %s\n", since(started))

	switch {
	case len(res.Failed) > 0:
		return fmt.Errorf("analysis of %s failed (logs: %s)", strings.Join(res.Failed, ", "), logPath)
	case len(rep.Missing) > 0:
		return fmt.Errorf("no ticker data for %s (logs: %s)", strings.Join(rep.Missing, ", "), logPath)
	case rep.Analysis == nil:
		return fmt.Errorf("no analysis of %q stored (logs: %s)", o.portfolio, logPath)
	}
	return nil
}

// processTickerHandler builds processTicker for the local stack. With a
// Polygon key it is functions.ProcessTicker, exactly as on Lambda. With the
// sandbox it is the same handler (functions.NewProcessTicker) over the same
// Polygon client pointed at the sandbox, recording source "sandbox" in the
// rows so that nobody mistakes sample prices for market data later.
func processTickerHandler(ctx context.Context, stack *devstack.Stack, out io.Writer) (func(context.Context, events.SQSEvent) (events.SQSEventResponse, error), error) {
	if !stack.UsingSandbox() {
		return functions.ProcessTicker(ctx, stack.Lookup, out)
	}
	cfg, err := config.LoadProcessTicker(stack.Lookup)
	if err != nil {
		return nil, err
	}
	client, err := polygon.New(polygon.Options{
		BaseURL: cfg.PolygonBaseURL, APIKey: polygon.StaticKey(stack.SandboxKey), CallsPerMinute: cfg.PolygonCallsPerMinute,
		Logger: logging.New(out, cfg.LogLevel).With("function", "processTicker", "stage", cfg.Stage),
	})
	if err != nil {
		return nil, err
	}
	rq, err := functions.NewRequeuer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return functions.NewProcessTicker(functions.TickerDeps{
		Config: cfg, Store: tickerdata.NewStore(stack.DB, cfg.TickerDataTable), Requeuer: rq,
		Market: client, Source: fakepolygon.SampleSource, Out: out,
	})
}

// invocationContext gives one handler call what Lambda gives it: the
// deployed function's timeout as the deadline (the handlers size their work
// to it, e.g. processTicker hands back records it cannot finish) and a
// request id for the logs.
func invocationContext(ctx context.Context, fn deploy.Function) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, fn.Timeout)
	return lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       "zsm-" + randomHex(8),
		InvokedFunctionArn: "arn:aws:lambda:" + localsqs.Region + ":" + localsqs.Account + ":function:" + fn.FunctionName(deploy.LocalStage),
	}), cancel
}

// schedulerEvent is the payload the deployed schedule sends processTickers:
// the explicit input {} of infra/schedules.go, which asks for a full scan of
// the portfolio tables.
func schedulerEvent() json.RawMessage { return json.RawMessage(`{}`) }

// deadLetterTickers names the tickers of dead-lettered message bodies (the
// whole bodies would fill the screen with a night's worth of tickers); a body
// that is not a queue message is shown quoted and shortened.
func deadLetterTickers(bodies []string) string {
	names := make([]string, 0, len(bodies))
	for _, b := range bodies {
		if m, err := queue.Decode([]byte(b)); err == nil {
			names = append(names, m.Ticker)
			continue
		}
		if len(b) > 40 {
			b = b[:40] + "…"
		}
		names = append(names, strconv.Quote(b))
	}
	return fmt.Sprintf("%d messages: %s", len(bodies), strings.Join(names, " "))
}

// batchEstimate says how long a paced batch will take.
func batchEstimate(n, pace int) string {
	if pace <= 0 {
		return ""
	}
	return fmt.Sprintf(", about %s at %d calls/min", (time.Duration(n) * time.Minute / time.Duration(pace)).Round(time.Second), pace)
}

// details picks the fields of a log record worth a progress line.
func details(rec map[string]any) string {
	var parts []string
	for _, k := range []string{"price", "rsi", "ma50", "asOf", "wait", "attempt", "error", "reason"} {
		if v, ok := rec[k]; ok {
			switch x := v.(type) {
			case float64:
				// Prices and indicators with two decimals; counts (attempt)
				// as the integers they are.
				if k == "price" || k == "rsi" || k == "ma50" {
					parts = append(parts, fmt.Sprintf("%s=%.2f", k, x))
				} else {
					parts = append(parts, fmt.Sprintf("%s=%v", k, x))
				}
			default:
				parts = append(parts, fmt.Sprintf("%s=%v", k, x))
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, " ") + ")"
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

// logTap writes the functions' output to the log file and hands each JSON log
// record to onRecord, for the progress lines.
type logTap struct {
	mu       sync.Mutex
	w        io.Writer
	buf      []byte
	onRecord func(map[string]any)
}

func newLogTap(w io.Writer) *logTap { return &logTap{w: w} }

func (t *logTap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.w.Write(p)
	if t.onRecord == nil {
		t.buf = t.buf[:0]
		return n, err
	}
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			break
		}
		line := t.buf[:i]
		var rec map[string]any
		// EMF metric documents are JSON too; they carry no "msg".
		if json.Unmarshal(line, &rec) == nil {
			t.onRecord(rec)
		}
		t.buf = t.buf[i+1:]
	}
	return n, err
}
