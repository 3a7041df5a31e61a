package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/app/processtickers"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

const runSynopsis = "zsm run [--memory | --data DIR] [--logs DIR] [--portfolio NAME] [--force]"

const runDescription = `Runs the nightly pipeline locally, with no AWS account and no keys: starts
dynalite (local DynamoDB) with the service's four tables, seeds the sample
portfolio "ZSM Seven" into the shared tables when absent, then runs the same
handlers the Lambdas run: processTickers (queues one message per ticker on a
local SQS queue) → processTicker (fed SQS batches of up to 10, failed
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
	r, err := startLocalRun(ctx, o, host, stderr)
	if err != nil {
		return err
	}
	// Stop runs on every path out of here, errors and Ctrl-C included (the
	// caller's context is cancelled on SIGINT/SIGTERM and every step below
	// returns promptly on it).
	defer r.stop()
	queued, err := r.processTickers(ctx)
	if err != nil {
		return err
	}
	if err := r.processTicker(ctx, queued); err != nil {
		return err
	}
	res, err := r.analyzePortfolio(ctx)
	if err != nil {
		return err
	}
	return r.report(ctx, res, stdout)
}

// localRun is one `zsm run`: the local stack, the log file the functions
// write to, and the progress lines on stderr.
type localRun struct {
	o       runOptions
	stack   *devstack.Stack
	where   string // where the data is kept, for people
	logPath string
	logs    *os.File
	stderr  io.Writer
	started time.Time
	// restoreEnv undoes the local stack's AWS_* variables.
	restoreEnv func()
}

func (r *localRun) say(format string, args ...any) { fmt.Fprintf(r.stderr, format+"\n", args...) }

// startLocalRun starts the local stack and the log file and says what runs
// where: the market data, its pacing and the analysis model.
func startLocalRun(ctx context.Context, o runOptions, host func(string) (string, bool), stderr io.Writer) (_ *localRun, err error) {
	r := &localRun{o: o, stderr: stderr, started: time.Now()}
	r.say("zsm run: the nightly pipeline on a local stack (no AWS account needed); Ctrl-C stops it")
	if r.stack, err = devstack.Start(ctx, devstack.Options{DataDir: o.dataDir, Host: host}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.stop()
		}
	}()
	r.where = "held in memory (gone when this run ends; zsm status will have nothing to read)"
	if o.dataDir != "" {
		r.where = "kept under " + o.dataDir + " (use --memory to keep nothing)"
	}
	env := r.stack.Env
	r.say("dynalite   %s, data %s", r.stack.Dynalite.Endpoint, r.where)
	r.say("tables     %s, %s, %s, %s (stage %s)", env[deploy.EnvTickerDataTable], env[deploy.EnvPortfolioAnalysesTable],
		env[deploy.EnvUserPortfoliosTable], env[deploy.EnvPortfolioPositionsTable], r.stack.Stage)
	r.say("queue      %s (local SQS)", r.stack.QueueURL)
	r.sayMarketData()
	if _, ok := env[deploy.EnvXAIAPIKey]; ok {
		model := env[deploy.EnvXAIModel]
		if model == "" {
			model = deploy.DefaultXAIModel + " (the default)"
		}
		r.say("analysis   xAI, %s", model)
	} else {
		r.say("analysis   rules analyst (set XAI_API_KEY for xAI Grok)")
	}

	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	r.logPath = filepath.Join(o.logDir, "run-"+r.started.UTC().Format("20060102T150405Z")+".jsonl")
	if r.logs, err = os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	r.say("logs       %s (the functions' JSON logs)", r.logPath)
	// The handlers build their AWS clients from the process environment.
	r.restoreEnv = r.stack.ApplyProcessEnv()
	r.say("")
	return r, nil
}

func (r *localRun) sayMarketData() {
	pace := r.stack.CallsPerMinute()
	if r.stack.UsingSandbox() {
		r.say("prices     %s (set POLYGON_API_KEY for Polygon)", fakepolygon.SampleLabel)
	} else {
		base := r.stack.Env[deploy.EnvPolygonBaseURL]
		if base == "" {
			base = deploy.DefaultPolygonBaseURL + " (the default)"
		}
		r.say("prices     Polygon at %s (POLYGON_API_KEY is set)", base)
	}
	switch {
	case pace > 0:
		r.say("pacing     %d Polygon calls per minute: about %s per ticker (POLYGON_CALLS_PER_MINUTE)", pace, (time.Minute / time.Duration(pace)).Round(time.Second))
	case r.stack.UsingSandbox():
		r.say("pacing     none: the sandbox has no rate limit (set POLYGON_CALLS_PER_MINUTE to pace it)")
	default:
		r.say("pacing     none (POLYGON_CALLS_PER_MINUTE=0: a paid plan)")
	}
}

// stop ends what the run started. It is safe to call on a partly started run.
func (r *localRun) stop() {
	if r.restoreEnv != nil {
		r.restoreEnv()
	}
	if r.logs != nil {
		r.logs.Close()
	}
	r.stack.Stop()
}

// processTickers invokes processTickers as the Scheduler does and returns
// how many messages it queued.
func (r *localRun) processTickers(ctx context.Context) (int, error) {
	t0 := time.Now()
	h, err := processtickers.New(ctx, r.stack.Lookup, r.logs)
	if err != nil {
		return 0, fmt.Errorf("processTickers: %w", err)
	}
	ictx, cancel := invocationContext(ctx, deploy.ProcessTickers)
	sum, err := h(ictx, schedulerEvent())
	cancel()
	if err != nil {
		return 0, fmt.Errorf("processTickers: %w (logs: %s)", err, r.logPath)
	}
	queued := r.stack.SQS.Counts(devstack.QueueName).Visible
	r.say("processTickers    %d tickers queued in %s (scanned %d items: %d symbols, %d invalid, %d not accepted; run %s)",
		sum.Queued, since(t0), sum.ItemsScanned, sum.SymbolsFound, sum.Invalid, sum.Failed, sum.RunID)
	if pace := r.stack.CallsPerMinute(); pace > 0 && queued > 0 {
		r.say("                  at %d Polygon calls per minute, %d tickers take about %s", pace, queued, (time.Duration(queued) * time.Minute / time.Duration(pace)).Round(time.Second))
	}
	return queued, nil
}

// processTicker feeds the queue to processTicker in batches, as the event
// source mapping does, and prints what became of each record.
func (r *localRun) processTicker(ctx context.Context, total int) error {
	t1 := time.Now()
	progress := &recordProgress{total: total, say: r.say}
	h, err := processTickerHandler(ctx, r.stack, r.logs, progress.observe)
	if err != nil {
		return fmt.Errorf("processTicker: %w", err)
	}
	pace := r.stack.CallsPerMinute()
	totals, err := r.stack.SQS.Drain(ctx, devstack.QueueName, localsqs.MaxBatch, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		left := r.stack.SQS.Counts(devstack.QueueName).Visible
		r.say("processTicker     batch of %d (%d of %d done, %d more queued)%s", len(ev.Records), progress.settled, total, left, batchEstimate(len(ev.Records), pace))
		ictx, cancel := invocationContext(ctx, deploy.ProcessTicker)
		defer cancel()
		resp, herr := h(ictx, ev)
		if herr != nil {
			r.say("processTicker     batch failed: %v (every record goes back to the queue)", herr)
		} else if n := len(resp.BatchItemFailures); n > 0 {
			r.say("processTicker     %d of %d records handed back to the queue (batchItemFailures)", n, len(ev.Records))
		}
		return resp, herr
	})
	if err != nil {
		return fmt.Errorf("processTicker: %w", err)
	}
	r.say("processTicker     %d batches, %d messages done, %d retried, %d dead-lettered in %s",
		totals.Batches, totals.Deleted, totals.Requeued, totals.DeadLettered, since(t1))
	// Moved there by the receive count, or sent there by processTicker after
	// a record's last attempt.
	dead := append(r.stack.SQS.DeadLetters(devstack.QueueName), r.stack.SQS.Visible(devstack.DLQName)...)
	if len(dead) > 0 {
		r.say("                  dead-letter queue: %s", deadLetterTickers(dead))
	}
	return nil
}

// analyzePortfolio invokes analyzePortfolio as the Scheduler does.
func (r *localRun) analyzePortfolio(ctx context.Context) (analyzer.Result, error) {
	t2 := time.Now()
	h, err := analyzeportfolio.New(ctx, r.stack.Lookup, r.logs)
	if err != nil {
		return analyzer.Result{}, fmt.Errorf("analyzePortfolio: %w", err)
	}
	ictx, cancel := invocationContext(ctx, deploy.AnalyzePortfolio)
	res, err := h(ictx, analyzer.Event{PortfolioName: r.o.portfolio, Force: r.o.force})
	cancel()
	if err != nil {
		return res, fmt.Errorf("analyzePortfolio: %w (logs: %s)", err, r.logPath)
	}
	for _, p := range res.Portfolios {
		note := p.Status
		if p.Status == analyzer.OutcomeReused {
			note = "reused the stored analysis of the same data"
		}
		r.say("analyzePortfolio  %q: %s, model %s, data as of %s in %s", p.Portfolio, note, p.Model, p.DataAsOf, since(t2))
		if p.Error != "" {
			r.say("                  error: %s", p.Error)
		}
	}
	return res, nil
}

// report prints the result table on stdout and fails the run when a
// portfolio failed, a ticker has no data, or no analysis was stored.
func (r *localRun) report(ctx context.Context, res analyzer.Result, stdout io.Writer) error {
	rep, err := gatherStatus(ctx, r.stack.DB, r.stack.Stage, r.o.portfolio, r.where, time.Now())
	if err != nil {
		return err
	}
	env := r.stack.Env
	fmt.Fprintln(stdout)
	printTable(stdout, rep)
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "  data: DynamoDB (dynalite), %s; tables %s and %s\n", r.where, env[deploy.EnvTickerDataTable], env[deploy.EnvPortfolioAnalysesTable])
	fmt.Fprintf(stdout, "  logs: %s\n", r.logPath)
	fmt.Fprintf(stdout, "  done in %s\n", since(r.started))
	switch {
	case len(res.Failed) > 0:
		return fmt.Errorf("analysis of %s failed (logs: %s)", strings.Join(res.Failed, ", "), r.logPath)
	case len(rep.Missing) > 0:
		return fmt.Errorf("no ticker data for %s (logs: %s)", strings.Join(rep.Missing, ", "), r.logPath)
	case rep.Analysis == nil:
		return fmt.Errorf("no analysis of %q stored (logs: %s)", r.o.portfolio, r.logPath)
	}
	return nil
}

// recordProgress renders processTicker's records as they are decided, one
// line each, from the use case's events (pipeline.Observer).
type recordProgress struct {
	total, settled int
	say            func(format string, args ...any)
}

func (p *recordProgress) observe(rec pipeline.Record) {
	if rec.Outcome.Settled() {
		p.settled++
	}
	ticker := rec.Ticker
	if ticker == "" {
		ticker = "?"
	}
	p.say("  [%d/%d] %-6s %s", p.settled, p.total, ticker, describeRecord(rec))
}

// describeRecord says in words what became of a record.
func describeRecord(rec pipeline.Record) string {
	reason := ""
	if rec.Err != nil {
		reason = " (" + rec.Err.Error() + ")"
	}
	attempt := ""
	if rec.Attempt > 0 {
		attempt = " attempt=" + strconv.Itoa(rec.Attempt+1)
	}
	switch rec.Outcome {
	case pipeline.Stored:
		return "ticker refreshed (" + describeRow(rec.Row) + ")"
	case pipeline.Permanent:
		if rec.Ticker == "" {
			return "poison message acknowledged" + reason + " [warn]"
		}
		return "ticker not refreshed: permanent error, message acknowledged" + reason + " [error]"
	case pipeline.Requeued:
		return "transient error: message re-queued at the tail of the queue" + attempt + reason + " [warn]"
	case pipeline.DeadLettered:
		return "ticker dead-lettered: transient errors on every attempt" + attempt + reason + " [error]"
	case pipeline.Deferred:
		return "handed back unstarted" + reason
	default: // pipeline.Transient
		return "ticker not refreshed: transient error, handed back" + attempt + reason + " [warn]"
	}
}

func describeRow(row *tickerdb.Row) string {
	if row == nil {
		return "no row"
	}
	return fmt.Sprintf("price=%.2f rsi=%s ma50=%s asOf=%s", row.Price, num(row.RSI, "%.2f"), num(row.MA50, "%.2f"), row.AsOf)
}

// processTickerHandler builds processTicker for the local stack as on Lambda
// (processticker.FromEnv, then Build), with an observer for the progress
// lines. With the sandbox (its URL and key in the environment), the rows
// record source "sandbox", so that nobody mistakes sample prices for market
// data later.
func processTickerHandler(ctx context.Context, stack *devstack.Stack, out io.Writer, observe pipeline.Observer) (processticker.Handler, error) {
	d, err := processticker.FromEnv(ctx, stack.Lookup, out)
	if err != nil {
		return nil, err
	}
	if stack.UsingSandbox() {
		d.Source = fakepolygon.SampleSource
	}
	d.Observer = observe
	return processticker.Build(d)
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

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }
