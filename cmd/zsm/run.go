package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/app/processtickers"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pacing"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/queue"
)

const runSynopsis = "zsm run [--memory | --data DIR] [--logs DIR] [--portfolio NAME|'*'] [--force] [--seed FILE] [--date YYYY-MM-DD]"

var runDescription = contractWords.Replace(`Runs the nightly pipeline locally, with no AWS account and no keys: starts
dynalite (local DynamoDB) with the service's tables, seeds the sample
portfolio "ZSM Seven" into the shared tables when absent, then runs the same
handlers the Lambdas run: processTickers (queues, on a local SQS queue, the
day message and one message per ticker for the last completed trading day)
→ processTicker (fed SQS batches of up to 10, as Lambda does: the day
message stores the day's grouped answer for every ticker, fetches the day
before once more, reads the splits into the ledger, and queues one fill
message per session the stored history lacks — a first run fills the
indicators' whole window, 252 sessions, showing its progress — then the
tickers again) → the catch-up run when the night still lacks rows (in production it runs at
{catch-up-at} New York; here at once) → analyzePortfolio. It ends with a table of
price, RSI(14), MA50, score and signal per ticker, and the other indicators.

--seed FILE replaces the local shared tables' portfolios with those of FILE:
  {"portfolios":[{"name":"ZSM Seven","positions":[{"ticker":"AAPL","quantity":10,"costBasis":1502.50}]}]}
(quantity and costBasis optional; costBasis is the position's total cost in
USD). The whole file is checked first: a bad one gets a one-line error naming
the entry, and nothing is written.

--date YYYY-MM-DD runs the night of that trading day as the schedules do,
New York time: {night}; market data up to that day. Any trading day from
2000 on can be run; a day that is not a trading day (a weekend, an NYSE
holiday or closure), or whose close has not passed, gets a one-line error. Runs of
dates against the same store (--data) behave as those nights in production:
consecutive ones make three calls each, and a night after missed ones one
call more per missed session.

Market data: with {polygon-key} set it calls Polygon ({polygon-base-url},
{polygon-rate}, default 5 per minute: 12 s per call); without, a
built-in sandbox serves deterministic SAMPLE prices in Polygon's formats.
Analysis: with {xai-key} set it calls xAI ({xai-url}, {xai-model}); without,
the rules analyst scores the portfolio. --portfolio '*' analyzes every portfolio
the way the stack does: analyzePortfolio's fan-out queues one message per
portfolio on a local analysis queue, which is consumed with the deployed
concurrency, one portfolio per invocation, each with the deployed timeout.

Shortened locally, and said so: a message handed back to either queue (a
handler error, a batchItemFailures entry, an invocation past its deadline) is
received again at once, not after the queue's visibility timeout; after 5
receives it is dead-lettered, as deployed, and the output names it.

Data is kept under .local/dynalite between runs (zsm status reads it); a second
run of the same day makes no per-ticker call (every row of the day is stored)
and reuses a stored analysis of the same data. The functions' JSON logs go to
a file under .local/logs. Exit status 1 when Polygon refuses the key (the last
lines say so; nothing is acknowledged). Ctrl-C stops everything it started.

Every variable of the contract (.env.example) set in your environment
reaches the functions as it would on AWS.`)

// runOptions are the parsed flags of `zsm run`.
type runOptions struct {
	dataDir   string // "" = in memory
	logDir    string
	portfolio string
	force     bool
	// seed, when set, replaces the local portfolios (--seed, parsed).
	seed []devstack.SeedPortfolio
	// date is the night to run (--date), "" for the last one at the clock.
	date string
	// sandbox adds options to the sandbox (tests: a publish delay, splits).
	sandbox fakepolygon.Options
	// functionsDynamoDB, when set, puts a proxy between the functions and
	// dynalite (tests: a store that fails; devstack.Options.FunctionsDynamoDB).
	functionsDynamoDB func(dynalite string) string
}

// runRun implements `zsm run`.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCmdFlags("run", runSynopsis, runDescription, stdout)
	memory := fs.Bool("memory", false, "hold DynamoDB data in memory (nothing kept, nothing for zsm status to read)")
	data := fs.String("data", devstack.DefaultDataDir, "keep DynamoDB data under this directory")
	logDir := fs.String("logs", devstack.DefaultLogDir, "write the functions' JSON logs to a file in this directory")
	portfolio := fs.String("portfolio", devstack.SamplePortfolio, "portfolio to analyze; '*' for every portfolio, through the analysis queue")
	force := fs.Bool("force", false, "analyze again even if an analysis of the same data is stored")
	seed := fs.String("seed", "", "replace the local portfolios with those of this JSON `FILE` (see above)")
	date := fs.String("date", "", "run the night of this trading day (YYYY-MM-DD)")
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
	if *date != "" {
		if err := checkNight(*date, time.Now()); err != nil {
			return usagef("run: --date %.20s: %v", *date, err)
		}
		opts.date = *date
	}
	if *seed != "" {
		b, err := os.ReadFile(*seed)
		if err == nil {
			opts.seed, err = devstack.ParseSeed(b)
		}
		if err != nil {
			return fmt.Errorf("run: --seed %s: %w", *seed, unwrapPathError(err))
		}
		if len(opts.seed) > 0 && *portfolio == devstack.SamplePortfolio && !seedHas(opts.seed, *portfolio) {
			opts.portfolio = opts.seed[0].Name // the file's first portfolio, unless --portfolio says
		}
	}
	err := runPipeline(ctx, opts, os.LookupEnv, stdout, stderr)
	if err != nil && ctx.Err() == nil && errors.Is(err, errKeyRefused) {
		return fmt.Errorf("run: %w", err)
	}
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
	// The night as production runs it: the contract's schedules in the
	// order they fire after the trading day's close, each invocation given
	// its schedule's event. Without --date, one after the other at once; with
	// it, each on the night's clock at its schedule's time.
	var a analysisRun
	first := true
	for _, f := range r.schedules() {
		r.clock.Set(f.At)
		switch f.Target {
		case deploy.ProcessTickers:
			queued, err := r.processTickers(ctx, f, !first)
			if err != nil {
				return err
			}
			first = false
			if queued > 0 {
				if err := r.processTicker(ctx, queued); err != nil {
					return err
				}
			}
		case deploy.AnalyzePortfolio:
			if a, err = r.analyzePortfolio(ctx, f); err != nil {
				return err
			}
		default:
			return fmt.Errorf("schedule %s targets %s, which zsm run cannot invoke", f.ID, f.Target.Name)
		}
	}
	return r.report(ctx, a, stdout)
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
	// clock is the night's: the functions' and the sandbox's with --date,
	// else the real time.
	clock *nightClock
	// night is the market-data calls and outcomes of the night so far.
	night nightCounts
}

// nightClock is the clock of a local night: fixed instants of the night of
// --date (the schedules' firings, deploy.Night) moving on with real time
// between them, or the real time.
type nightClock struct {
	mu    sync.Mutex
	base  time.Time // zero: the real time
	since time.Time
}

// Now returns the night's time.
func (c *nightClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base.IsZero() {
		return time.Now()
	}
	return c.base.Add(time.Since(c.since))
}

// Set moves a --date clock to t; a real-time clock stays real.
func (c *nightClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.IsZero() {
		c.base, c.since = t, time.Now()
	}
}

// marketClock is processTicker's market clock: the night's with --date (what
// the sandbox has published, when a session was fetched), nil otherwise
// (the real time). Its deadlines stay real.
func (r *localRun) marketClock() func() time.Time {
	if r.o.date == "" {
		return nil
	}
	return r.clock.Now
}

// schedules are the contract's schedules of the night of --date, at their
// firings in New York time; without --date, of the last completed trading
// day, whose times are only said (the clock stays real).
func (r *localRun) schedules() []deploy.Firing {
	day := r.o.date
	if day == "" {
		day = marketdata.LastTradingDay(time.Now())
	}
	d, _ := time.ParseInLocation(time.DateOnly, day, marketdata.NewYork())
	night := deploy.Night(d, marketdata.NewYork())
	if r.o.date == "" {
		for i := range night {
			night[i].At = time.Time{} // Set leaves a real clock real
		}
	}
	return night
}

// checkNight says why date cannot be run as a night: not a date, before the
// NYSE calendar this service knows, not a trading day (which weekday or which
// closure), or a day whose close has not passed by now.
func checkNight(date string, now time.Time) error {
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return errors.New("not a YYYY-MM-DD date")
	}
	if !marketdata.InCalendar(date) {
		return fmt.Errorf("before %d, where the NYSE calendar this service knows begins", marketdata.CalendarFirstYear)
	}
	if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return fmt.Errorf("not a trading day (a %s)", wd)
	}
	if reason, closed := marketdata.NYSE().Closed(date); closed {
		return fmt.Errorf("not a trading day (NYSE closed: %s)", reason)
	}
	if last := marketdata.LastTradingDay(now); date > last {
		return fmt.Errorf("in the future: the last completed trading day is %s", last)
	}
	return nil
}

func seedHas(seed []devstack.SeedPortfolio, name string) bool {
	for _, p := range seed {
		if p.Name == name {
			return true
		}
	}
	return false
}

// unwrapPathError keeps a file error short: "no such file or directory".
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// errKeyRefused ends a run whose market-data key Polygon refused.
var errKeyRefused = errors.New("the Polygon API key was refused")

// nightCounts is what processTicker's records said of the night: the
// market-data calls by kind.
type nightCounts struct {
	grouped, splits, perTicker int
	refused                    []pipeline.Record
	lastRefusal                error
}

func (n *nightCounts) observe(rec pipeline.Record) {
	switch {
	case rec.Day != nil:
		n.grouped += rec.Day.GroupedCalls
		n.splits += rec.Day.SplitsCalls
	case rec.Fill != nil:
		n.grouped += rec.Fill.Calls
	case rec.TickerCall != "":
		n.perTicker++
	}
	if rec.Outcome == pipeline.Refused {
		n.refused = append(n.refused, rec)
		n.lastRefusal = rec.Err
	}
}

// calls is the night's market-data calls so far.
func (n *nightCounts) calls() int { return n.grouped + n.splits + n.perTicker }

func (r *localRun) say(format string, args ...any) { fmt.Fprintf(r.stderr, format+"\n", args...) }

// startLocalRun starts the local stack and the log file and says what runs
// where: the market data, its pacing and the analysis model.
func startLocalRun(ctx context.Context, o runOptions, host func(string) (string, bool), stderr io.Writer) (_ *localRun, err error) {
	r := &localRun{o: o, stderr: stderr, started: time.Now(), clock: &nightClock{}}
	r.say("zsm run: the nightly pipeline on a local stack (no AWS account needed); Ctrl-C stops it")
	// The local run's one shortening of the queues: what is handed back is
	// received again at once (said below, with the deployed waits).
	so := devstack.Options{DataDir: o.dataDir, Host: host, Seed: o.seed, Sandbox: o.sandbox, RedeliverAtOnce: true,
		FunctionsDynamoDB: o.functionsDynamoDB}
	if o.date != "" {
		so.Now = r.clock.Now
	}
	if r.stack, err = devstack.Start(ctx, so); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.stop()
		}
	}()
	// Each function's configuration is read once here, so that a bad
	// variable fails the run at once with its one line, as a cold start
	// would, rather than after the nights' work of the functions before it.
	if err := checkConfigs(r.stack.Lookup); err != nil {
		return nil, err
	}
	r.where = "held in memory (gone when this run ends; zsm status will have nothing to read)"
	if o.dataDir != "" {
		r.where = "kept under " + o.dataDir + " (use --memory to keep nothing)"
	}
	env := r.stack.Env
	r.say("dynalite   %s, data %s", r.stack.Dynalite.Endpoint, r.where)
	r.say("tables     %s, %s, %s, %s, %s, %s (stage %s)", env[deploy.EnvTickerDataTable], env[deploy.EnvDailyBarsTable], env[deploy.EnvPortfolioAnalysesTable],
		env[deploy.EnvAnalysisReservationsTable], env[deploy.EnvUserPortfoliosTable], env[deploy.EnvPortfolioPositionsTable], r.stack.Stage)
	r.say("queue      %s (local SQS)", r.stack.QueueURL)
	if o.portfolio == analyzer.AllPortfolios {
		r.say("queue      %s (local SQS, the analysis fan-out)", r.stack.AnalysisQueueURL)
	}
	r.say("shortened  a message handed back (handler error, batchItemFailures, deadline) is received again at once, not after the queue's")
	r.say("           visibility timeout (deployed: %s tickers, %s analyses) or a retry delay; after %d receives it is dead-lettered, as deployed",
		devstack.VisibilityTimeout, devstack.AnalysisVisibilityTimeout, devstack.MaxReceiveCount)
	if o.date != "" {
		r.say("night      %s, as the schedules run it (New York time): %s", o.date, deploy.Describe(r.schedules()))
	}
	if d := r.stack.SampleDrift; d != "" && o.seed == nil {
		r.say("sample     %s; --memory for a fresh one, or remove %s to seed it again", d, o.dataDir)
	}
	if o.seed != nil {
		n := 0
		for _, p := range o.seed {
			n += len(p.Positions)
		}
		r.say("portfolios replaced by the seed file: %d portfolios, %d positions", len(o.seed), n)
	}
	r.sayMarketData()
	if _, ok := env[deploy.EnvXAIAPIKey]; ok {
		model := env[deploy.EnvXAIModel]
		if model == "" {
			model = deploy.DefaultXAIModel + " (the default)"
		}
		r.say("analysis   xAI, %s", model)
	} else {
		r.say("analysis   rules analyst (set %s for xAI Grok)", deploy.EnvXAIAPIKey)
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
		r.say("prices     %s (set %s for Polygon)", fakepolygon.SampleLabel, deploy.EnvPolygonAPIKey)
	} else {
		base := r.stack.Env[deploy.EnvPolygonBaseURL]
		if base == "" {
			base = deploy.DefaultPolygonBaseURL + " (the default)"
		}
		r.say("prices     Polygon at %s (%s is set)", base, deploy.EnvPolygonAPIKey)
	}
	switch {
	case pace > 0:
		r.say("pacing     %d Polygon calls per minute: about %s a call (%s); a night makes 3, a missing session 1 more (a first night 254)", pace, (time.Minute / time.Duration(pace)).Round(time.Second), deploy.EnvPolygonCallsPerMinute)
	case r.stack.UsingSandbox():
		r.say("pacing     none: the sandbox has no rate limit (set %s to pace it)", deploy.EnvPolygonCallsPerMinute)
	default:
		r.say("pacing     none (%s=0: a paid plan)", deploy.EnvPolygonCallsPerMinute)
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

// processTickers invokes processTickers as the Scheduler does, with the
// schedule's event, and returns how many messages are queued. A later run of
// the night (catchUp: the catch-up schedule) says something only when the
// night still lacks rows.
func (r *localRun) processTickers(ctx context.Context, f deploy.Firing, catchUp bool) (int, error) {
	t0 := time.Now()
	d, err := processtickers.FromEnv(ctx, r.stack.Lookup, r.logs)
	if err != nil {
		return 0, fmt.Errorf("processTickers: %w", err)
	}
	if r.o.date != "" {
		d.Now = r.clock.Now
	}
	h := processtickers.Build(d)
	ictx, cancel := invocationContext(ctx, deploy.ProcessTickers)
	sum, err := h(ictx, json.RawMessage(f.Payload("")))
	cancel()
	if err != nil {
		return 0, fmt.Errorf("processTickers: %w (logs: %s)", err, r.logPath)
	}
	queued := r.stack.SQS.Counts(devstack.QueueName).Visible
	if catchUp {
		if queued == 0 {
			return 0, nil // the night is complete: nothing to say
		}
		again := ""
		if sum.DayMessages > 0 {
			again = " and the day again (not published at the first pass)"
		}
		r.say("")
		r.say("catch-up          %d tickers of %s still without a row%s: queued again (in production the %s schedule runs this at %s New York; here it runs now)",
			sum.Queued, sum.Date, again, f.Target.Name+f.Suffix, f.Schedule.At())
		return queued, nil
	}
	r.say("processTickers    %d tickers queued for %s, after %s, in %s (scanned %d items: %d symbols, %d invalid, %d not accepted; run %s)",
		sum.Queued, sum.Date, plural(sum.DayMessages, "day message"), since(t0), sum.ItemsScanned, sum.SymbolsFound, sum.Invalid, sum.Failed, sum.RunID)
	return queued, nil
}

// processTicker feeds the queue to processTicker in batches, as the event
// source mapping does, and prints what became of each record.
func (r *localRun) processTicker(ctx context.Context, total int) error {
	t1 := time.Now()
	before := r.night
	progress := &recordProgress{total: total, pace: r.stack.CallsPerMinute(), calls: r.night.calls, say: r.say}
	h, err := processTickerHandler(ctx, r.stack, r.logs, r.marketClock(), func(rec pipeline.Record) {
		r.night.observe(rec)
		progress.observe(rec)
	})
	if err != nil {
		return fmt.Errorf("processTicker: %w", err)
	}
	pace := r.stack.CallsPerMinute()
	// As the event source mapping: batches of up to 10, one at a time (one
	// message group), each with processTicker's timeout as its deadline. A
	// refused key stops the run: nothing more is received.
	refusedBefore := len(r.night.refused)
	consume := localsqs.ConsumeOptions{BatchSize: localsqs.MaxBatch, Workers: 1, Timeout: deploy.ProcessTicker.Timeout,
		Halt: func() bool { return len(r.night.refused) > refusedBefore }}
	totals, err := r.stack.SQS.Consume(ctx, devstack.QueueName, consume, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		left := r.stack.SQS.Counts(devstack.QueueName).Visible
		if !onlyFills(ev) { // a fill's batches show as its progress lines
			r.say("processTicker     batch of %d (%d of %d done, %d more queued)", len(ev.Records), progress.settled, progress.total, left)
		}
		resp, herr := h(lambdaContext(ctx, deploy.ProcessTicker), ev)
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			r.say("processTicker     invocation cut by its %s deadline: every record goes back to the queue", deploy.ProcessTicker.Timeout)
		case herr != nil:
			r.say("processTicker     batch failed: %v (every record goes back to the queue)", herr)
		case len(resp.BatchItemFailures) > 0:
			r.say("processTicker     %d of %d records handed back to the queue (batchItemFailures)", len(resp.BatchItemFailures), len(ev.Records))
		}
		return resp, herr
	})
	if err != nil {
		return fmt.Errorf("processTicker: %w", err)
	}
	calls := r.night.calls() - before.calls()
	r.say("processTicker     %d batches, %d messages done, %d retried, %d dead-lettered in %s; market-data calls: %d (%d grouped, %d splits, %d per-ticker)%s",
		totals.Batches, totals.Deleted, totals.Requeued, totals.DeadLettered, since(t1), calls,
		r.night.grouped-before.grouped, r.night.splits-before.splits, r.night.perTicker-before.perTicker, callsEstimate(calls, pace))
	// Moved there by the receive count, or sent there by processTicker after
	// a record's last attempt.
	dead := append(r.stack.SQS.DeadLetters(devstack.QueueName), r.stack.SQS.Visible(devstack.DLQName)...)
	if len(dead) > 0 {
		r.say("                  dead-letter queue: %s", deadLetterTickers(dead))
	}
	if len(r.night.refused) > 0 {
		c := r.stack.SQS.Counts(devstack.QueueName)
		back := c.Visible + c.InFlight
		r.say("")
		r.say("Polygon refused the API key (%v).", singleLine(r.night.lastRefusal.Error()))
		r.say("The run stopped calling Polygon: %d messages are back on the queue, none acknowledged (in production they wait out the queue's visibility timeout, %s, while an operator fixes the key).",
			back, devstack.VisibilityTimeout)
		r.say("Fix %s (or unset it for the sandbox) and run again.", deploy.EnvPolygonAPIKey)
		return fmt.Errorf("%w: %d messages handed back unacknowledged; fix %s and run again (logs: %s)", errKeyRefused, back, deploy.EnvPolygonAPIKey, r.logPath)
	}
	if totals.Waiting > 0 {
		r.say("                  %d messages wait out their visibility timeout (%s) on the local queue", totals.Waiting, devstack.VisibilityTimeout)
	}
	return nil
}

// onlyFills reports whether every record of ev is a fill message.
func onlyFills(ev events.SQSEvent) bool {
	for _, rec := range ev.Records {
		if m, err := queue.Decode([]byte(rec.Body)); err != nil || !m.IsFill() {
			return false
		}
	}
	return len(ev.Records) > 0
}

// callsEstimate says how long the calls take at the pacing.
func callsEstimate(calls, pace int) string {
	if pace <= 0 || calls == 0 {
		return ""
	}
	return fmt.Sprintf(", about %s of pacing at %d calls/min", (time.Duration(calls) * pacing.Interval(pace)).Round(time.Second), pace)
}

// analysisRun is what the analysis step did.
type analysisRun struct {
	// result is the scheduled invocation's answer: one portfolio, or the
	// fan-out's queued list.
	result analyzer.Result
	// outcomes are the queue consumer's, one per invocation (fan-out only).
	outcomes []analyzer.Outcome
	// dead are the portfolios whose message reached the dead-letter list.
	dead []string
	// draining is set while the queue is consumed.
	draining bool
}

// analyzePortfolio invokes analyzePortfolio as the Scheduler does; for "*"
// its fan-out queues one message per portfolio and the analysis queue is
// then consumed as deployed (analyzeQueue).
func (r *localRun) analyzePortfolio(ctx context.Context, f deploy.Firing) (analysisRun, error) {
	t2 := time.Now()
	d, err := analyzeportfolio.FromEnv(ctx, r.stack.Lookup, r.logs)
	if err != nil {
		return analysisRun{}, fmt.Errorf("analyzePortfolio: %w", err)
	}
	if r.o.date != "" {
		d.Now = r.clock.Now
	}
	fan := r.o.portfolio == analyzer.AllPortfolios
	var a analysisRun
	var mu sync.Mutex
	if fan {
		// The queue consumer's outcomes, one line each (the fan-out's own
		// are in its result).
		d.Observer = func(o analyzer.Outcome) {
			mu.Lock()
			defer mu.Unlock()
			if !a.draining {
				return
			}
			a.outcomes = append(a.outcomes, o)
			r.say("  [%d] %s", len(a.outcomes), describeOutcome(o))
		}
	}
	fn := analyzeportfolio.Build(d)
	ictx, cancel := invocationContext(ctx, deploy.AnalyzePortfolio)
	// The schedule's event, naming --portfolio; --force on top.
	ev, err := analyzer.DecodeEvent(json.RawMessage(f.Payload(r.o.portfolio)))
	if err != nil {
		cancel()
		return a, fmt.Errorf("analyzePortfolio: the %s schedule's event: %w", f.ID, err)
	}
	ev.Force = r.o.force
	a.result, err = fn.Run(ictx, ev)
	cancel()
	if err != nil {
		return a, fmt.Errorf("analyzePortfolio: %w (logs: %s)", err, r.logPath)
	}
	if !fan {
		for _, p := range a.result.Portfolios {
			r.say("analyzePortfolio  %s in %s", describeOutcome(p), since(t2))
		}
		return a, nil
	}
	return a, r.analyzeQueue(ctx, fn, &a, &mu, t2)
}

// analyzeQueue consumes the analysis queue as the deployed event source
// does: batches of one, at most deploy.DefaultAnalysisConcurrency
// invocations at once, each with analyzePortfolio's timeout as its
// deadline. The waits that are SQS's on AWS are shortened here, and the
// output says so.
func (r *localRun) analyzeQueue(ctx context.Context, fn *analyzeportfolio.Function, a *analysisRun, mu *sync.Mutex, t2 time.Time) error {
	name := devstack.AnalysisQueueName
	queued := len(a.result.Queued)
	r.say("analyzePortfolio  fan-out: %s queued on %s, never analyzed first, then oldest analysis first (run %s)", plural(queued, "portfolio"), name, a.result.RunID)
	for _, p := range a.result.Portfolios {
		if p.Status == analyzer.OutcomeSkipped {
			r.say("                  skipped %q: %s", p.Portfolio, p.Reason)
		}
	}
	r.say("                  consumed as deployed: one portfolio per invocation, at most %d at once, each with a %s deadline",
		deploy.DefaultAnalysisConcurrency, deploy.AnalyzePortfolio.Timeout)
	r.say("                  shortened locally: a portfolio handed back is received again at once (deployed: after the %s visibility timeout,",
		devstack.AnalysisVisibilityTimeout)
	r.say("                  later in the night), and after %d receives it moves to the dead-letter list at once", deploy.AnalysisMaxReceiveCount)
	mu.Lock()
	a.draining = true
	mu.Unlock()
	consume := localsqs.ConsumeOptions{BatchSize: 1, Workers: deploy.DefaultAnalysisConcurrency, Timeout: deploy.AnalyzePortfolio.Timeout}
	totals, err := r.stack.SQS.Consume(ctx, name, consume, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		resp, err := fn.Consume(lambdaContext(ctx, deploy.AnalyzePortfolio), ev)
		mu.Lock() // the progress lines of concurrent invocations
		defer mu.Unlock()
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			r.say("  invocation cut by its %s deadline: its portfolio goes back to the queue", deploy.AnalyzePortfolio.Timeout)
		case err != nil:
			r.say("  invocation failed: %v (its portfolio goes back to the queue)", singleLine(err.Error()))
		}
		return resp, err
	})
	if err != nil {
		return fmt.Errorf("analyzePortfolio: %w", err)
	}
	for _, b := range r.stack.SQS.DeadLetters(name) {
		if m, err := analysisqueue.Decode([]byte(b)); err == nil {
			a.dead = append(a.dead, m.Portfolio)
		} else {
			if len(b) > 40 {
				b = b[:40] + "…"
			}
			a.dead = append(a.dead, b) // not a portfolio's message
		}
	}
	count := map[string]int{}
	for _, o := range a.outcomes {
		count[o.Status]++
	}
	r.say("analyzePortfolio  %d invocations, at most %d at once: %d ok, %d fallback, %d reused, %d skipped, %d handed back (retried), %d dead-lettered in %s",
		totals.Batches, totals.Peak, count[analyzer.OutcomeOK], count[analyzer.OutcomeFallback], count[analyzer.OutcomeReused],
		count[analyzer.OutcomeSkipped], totals.Requeued+totals.DeadLettered, totals.DeadLettered, since(t2))
	if len(a.dead) > 0 {
		r.say("                  dead-lettered locally after %d receives, as %s would take them: %s",
			deploy.AnalysisMaxReceiveCount, deploy.AnalysisDLQName(deploy.LocalStage), quoteAll(a.dead))
	}
	return nil
}

// quoteAll is the names quoted, comma-separated.
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// describeOutcome says in words what became of one portfolio.
func describeOutcome(o analyzer.Outcome) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q: ", o.Portfolio)
	switch o.Status {
	case analyzer.OutcomeReused:
		b.WriteString("reused the stored analysis of the same data")
	case analyzer.OutcomeFailed:
		b.WriteString("failed: " + o.Error)
		return b.String()
	case analyzer.OutcomeSkipped:
		b.WriteString("skipped: " + o.Reason)
		return b.String()
	default:
		b.WriteString(o.Status)
	}
	fmt.Fprintf(&b, ", model %s, data as of %s", o.Model, o.DataAsOf)
	switch {
	case o.Calls == 1:
		b.WriteString(", 1 model call")
	case o.Calls > 1:
		fmt.Fprintf(&b, ", %d model calls", o.Calls)
	}
	return b.String()
}

// report prints the result table on stdout and fails the run when a
// portfolio failed or was dead-lettered, a ticker has no data, or no
// analysis was stored.
func (r *localRun) report(ctx context.Context, a analysisRun, stdout io.Writer) error {
	rep, err := gatherStatus(ctx, r.stack.DB, r.stack.Stage, r.o.portfolio, r.where, r.clock.Now())
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
	// A portfolio failed if its last outcome is a failure: one handed back
	// and then analyzed on a later receive did not.
	last := map[string]string{}
	var order []string
	for _, o := range append(slices.Clone(a.result.Portfolios), a.outcomes...) {
		if _, seen := last[o.Portfolio]; !seen {
			order = append(order, o.Portfolio)
		}
		last[o.Portfolio] = o.Status
	}
	var failed []string
	for _, p := range order {
		if last[p] == analyzer.OutcomeFailed && !slices.Contains(a.dead, p) {
			failed = append(failed, p)
		}
	}
	switch {
	case len(a.dead) > 0:
		return fmt.Errorf("analysis of %s failed on each of its %d receives: dead-lettered (logs: %s)", quoteAll(a.dead), deploy.AnalysisMaxReceiveCount, r.logPath)
	case len(failed) > 0:
		return fmt.Errorf("analysis of %s failed (logs: %s)", strings.Join(failed, ", "), r.logPath)
	case len(rep.Missing) > 0:
		return fmt.Errorf("no ticker data for %s (logs: %s)", strings.Join(rep.Missing, ", "), r.logPath)
	case r.o.portfolio != analyzer.AllPortfolios && rep.Analysis == nil:
		return fmt.Errorf("no analysis of %q stored (logs: %s)", r.o.portfolio, r.logPath)
	}
	return nil
}

// recordProgress renders processTicker's records as they are decided, from
// the use case's events (pipeline.Observer): a line each, but for a fill, a
// line every fillLine sessions and at its end (sessions filled of sessions
// needed, the night's calls so far, the time left at the pace).
type recordProgress struct {
	total, settled int
	// pace is the calls per minute (0: none); calls the night's calls so far.
	pace  int
	calls func() int
	say   func(format string, args ...any)
}

// fillLine is how many sessions of a fill one progress line stands for.
const fillLine = 25

func (p *recordProgress) observe(rec pipeline.Record) {
	if rec.Outcome.Settled() {
		p.settled++
	}
	if d := rec.Day; d != nil && d.Planned > 0 {
		p.total += d.Planned + d.Held // the fill, then the tickers again
	}
	if f := rec.Fill; f != nil && rec.Outcome == pipeline.FillDone {
		if f.Part == 1 || f.Part%fillLine == 0 || f.Part == f.Parts {
			p.say("  [%d/%d] %-6s %s", p.settled, p.total, "fill", describeFill(f, p.calls(), p.pace))
		}
		return
	}
	p.say("  [%d/%d] %-6s %s", p.settled, p.total, rec.Label(), describeRecord(rec))
}

// describeFill says how far a night's fill is: this session, the sessions
// filled of those needed, the night's calls, the time left at the pace.
func describeFill(f *pipeline.FillResult, calls, pace int) string {
	what := string(f.Status)
	if f.AlreadyDone {
		what += " before"
	}
	left := ""
	if pace > 0 && f.Parts > f.Part {
		left = fmt.Sprintf(", about %s left at %d calls/min", (time.Duration(f.Parts-f.Part) * pacing.Interval(pace)).Round(time.Second), pace)
	}
	return fmt.Sprintf("the window of %s: session %s %s; %d of %d sessions filled, %s so far%s",
		f.Night, f.Session, what, f.Part, f.Parts, plural(calls, "market-data call"), left)
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
		what := "ticker refreshed"
		switch {
		case rec.TickerCall != "":
			what += ", its own bars fetched first: " + rec.TickerCall
		case rec.Row != nil && rec.Row.Partial:
			what += ", partial while its window is filled (absent: what the missing sessions hold)"
		}
		for _, d := range rec.Discontinuities {
			what += "; price continuity: " + d.String() + " [warn]"
		}
		return what + " (" + describeRow(rec.Row) + ")"
	case pipeline.DayDone:
		return describeDay(rec)
	case pipeline.FillDone:
		return describeFill(rec.Fill, 0, 0)
	case pipeline.Current:
		return "row of " + rec.Date + " already stored: acknowledged without a call"
	case pipeline.Stale:
		return "no bar of " + rec.Date + " yet" + reason + ": the last good row is kept [warn]"
	case pipeline.Refused:
		return "Polygon refused the key or the plan: the run stops, handed back" + reason + " [error]"
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

// describeDay says what a day message did.
func describeDay(rec pipeline.Record) string {
	d := rec.Day
	if d == nil {
		return "day message acknowledged"
	}
	switch {
	case d.AlreadyDone:
		return "day already refreshed by this message: acknowledged without a call"
	case d.Status == pipeline.DayFallback:
		return "grouped daily not authorized for this key's plan: every ticker fetches its own bars tonight [error]"
	}
	var parts []string
	switch {
	case d.Status == pipeline.DayNotPublished:
		parts = append(parts, "Polygon has not published the day yet (grouped daily: resultsCount 0): tickers keep their last good row until the catch-up [warn]")
	case d.Rows == 0:
		parts = append(parts, "day stored before")
	default:
		parts = append(parts, fmt.Sprintf("day stored: %d of %d held tickers in the grouped answer (%d rows, %d skipped), %d absent", d.Present, d.Held, d.Rows, d.Skipped, d.Missing))
	}
	if len(d.Revised) > 0 {
		parts = append(parts, "fetched again after its close: "+strings.Join(d.Revised, " "))
	}
	if d.SplitsFrom != "" {
		splits := "splits " + d.SplitsFrom + ".." + d.SplitsTo + ": "
		if len(d.Splits) == 0 {
			splits += "none new"
		} else {
			splits += strings.Join(d.Splits, " ")
		}
		if d.Retracted > 0 {
			splits += fmt.Sprintf(" (%d withdrawn)", d.Retracted)
		}
		parts = append(parts, splits)
	}
	switch {
	case d.Planned > 0:
		parts = append(parts, fmt.Sprintf("the window lacks %s: fill queued (one grouped call each, then the tickers again)", plural(d.Planned, "session")))
	case d.Needed > 0:
		parts = append(parts, fmt.Sprintf("the window lacks %s: its fill is queued already", plural(d.Needed, "session")))
	}
	return strings.Join(parts, "; ")
}

func describeRow(row *pipeline.Row) string {
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
func processTickerHandler(ctx context.Context, stack *devstack.Stack, out io.Writer, market func() time.Time, observe pipeline.Observer) (processticker.Handler, error) {
	d, err := processticker.FromEnv(ctx, stack.Lookup, out)
	if err != nil {
		return nil, err
	}
	if stack.UsingSandbox() {
		d.Source = fakepolygon.SampleSource
	}
	d.Observer, d.MarketNow = observe, market
	return processticker.Build(d)
}

// invocationContext gives one handler call what Lambda gives it: the
// deployed function's timeout as the deadline (the handlers size their work
// to it, e.g. processTicker hands back records it cannot finish) and a
// request id for the logs. The queues' consumers set the deadline
// themselves (localsqs.ConsumeOptions.Timeout) and add lambdaContext.
func invocationContext(ctx context.Context, fn deploy.Function) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, fn.Timeout)
	return lambdaContext(ctx, fn), cancel
}

// lambdaContext adds what Lambda tells an invocation of fn: a request id
// for the logs and the function's ARN.
func lambdaContext(ctx context.Context, fn deploy.Function) context.Context {
	return lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       "zsm-" + randomHex(8),
		InvokedFunctionArn: "arn:aws:lambda:" + localsqs.Region + ":" + localsqs.Account + ":function:" + fn.FunctionName(deploy.LocalStage),
	})
}

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

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

// plural is "1 portfolio", "2 portfolios".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// checkConfigs reads the three functions' configurations from lookup and
// returns the first problem, naming the function and the variable.
func checkConfigs(lookup config.Lookup) error {
	for _, c := range []struct {
		fn   deploy.Function
		load func(config.Lookup) error
	}{
		{deploy.ProcessTickers, func(l config.Lookup) error { _, err := config.LoadProcessTickers(l); return err }},
		{deploy.ProcessTicker, func(l config.Lookup) error { _, err := config.LoadProcessTicker(l); return err }},
		{deploy.AnalyzePortfolio, func(l config.Lookup) error { _, err := config.LoadAnalyzePortfolio(l); return err }},
	} {
		if err := c.load(lookup); err != nil {
			return fmt.Errorf("%s: %w", c.fn.Name, err)
		}
	}
	return nil
}
