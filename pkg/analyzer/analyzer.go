package analyzer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/reservationdb"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/symbol"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// ErrUnknownPortfolio is returned (wrapped) when no portfolio has the
// requested name: the shared-table reader's sentinel, which the Portfolios
// port wraps for that case.
var ErrUnknownPortfolio = portfoliodb.ErrUnknownPortfolio

// ErrNoPositions means the portfolio has no valid position to analyze.
var ErrNoPositions = errors.New("portfolio has no valid positions")

// ErrBusy means another run holds the reservation of the same analysis and
// did not finish within this invocation's time: the message is handed back
// (it will find the stored result).
var ErrBusy = errors.New("another run is analyzing the same portfolio and data")

// Portfolios reads the shared portfolio tables.
type Portfolios interface {
	List(ctx context.Context) ([]portfoliodb.Portfolio, error)
	// Holdings returns an error wrapping ErrUnknownPortfolio when no
	// portfolio has that name.
	Holdings(ctx context.Context, name string) (portfoliodb.Portfolio, []portfoliodb.Position, []portfoliodb.Invalid, error)
}

// TickerData reads the newest ticker-data row of a symbol.
type TickerData interface {
	Latest(ctx context.Context, ticker string) (tickerdb.Row, bool, error)
}

// Store keeps analyses.
type Store interface {
	Put(ctx context.Context, it analysisdb.Item) error
	Recent(ctx context.Context, portfolio string, limit int) ([]analysisdb.Item, error)
}

// Reservations hold the pay-once reservations (reservationdb.Store).
type Reservations interface {
	Reserve(ctx context.Context, r reservationdb.Reservation) (reservationdb.Reservation, bool, error)
	Complete(ctx context.Context, r reservationdb.Reservation) error
	Release(ctx context.Context, key, owner string) error
}

// Queue is the analysis queue the fan-out sends to (analysisqueue.Sender).
type Queue interface {
	Send(ctx context.Context, msgs []analysisqueue.Message) (int, []analysisqueue.Failure, error)
}

// LLM is the analysis model (xai.Client, wired in pkg/app/analyzeportfolio),
// in the domain's words. Complete returns an error wrapping
// analysis.ErrTruncated for an answer cut off at the completion-token cap,
// one wrapping analysis.ErrUnfinished for another finish reason (a content
// filter), and a classified error (package retry) when the call fails.
type LLM interface {
	// Model is the requested model name.
	Model() string
	Complete(ctx context.Context, req analysis.Request) (analysis.Completion, error)
}

var (
	_ Portfolios   = (*portfoliodb.Reader)(nil)
	_ TickerData   = (*tickerdb.Store)(nil)
	_ Store        = (*analysisdb.Repository)(nil)
	_ Reservations = (*reservationdb.Store)(nil)
	_ Queue        = (*analysisqueue.Sender)(nil)
)

// Options configure a Service.
type Options struct {
	Portfolios   Portfolios
	TickerData   TickerData
	Store        Store
	Reservations Reservations
	// Queue is the analysis queue of the fan-out; nil refuses to fan out.
	Queue Queue
	// LLM is nil when no API key is configured: every analysis then comes
	// from the rules analyst with NoLLMReason.
	LLM         LLM
	NoLLMReason string
	// MaxCompletionTokens is the ceiling of each call's completion cap
	// (deploy.DefaultXAIMaxCompletionTokens if 0).
	MaxCompletionTokens int
	// ReasoningEffort is sent with every call ("" sends none).
	ReasoningEffort string
	// DefaultPortfolio is analyzed when the event names none.
	DefaultPortfolio string
	// LastTradingDay is marketdata.LastTradingDay (injected to keep tests
	// independent of the calendar).
	LastTradingDay func(now time.Time) string
	// Sessions counts the NYSE sessions after from up to and including to
	// (default: from the marketdata calendar).
	Sessions func(from, to string) int
	// Parallel bounds the concurrent ticker-data queries (default 8) and the
	// fan-out's latest-analysis queries.
	Parallel int
	// BatchParallel bounds the model calls in flight for one portfolio
	// analyzed in batches (default 4).
	BatchParallel int
	// RecentLimit is how many stored analyses are compared for reuse (default 10).
	RecentLimit int
	// Lease is how long a reservation is held when the context has no
	// deadline (default analyzePortfolio's timeout); with one, the lease is
	// the deadline.
	Lease time.Duration
	// WaitPoll is how often a run waiting for another run's reservation
	// looks again (default 2 s); MinWork the least time left to wait or
	// start a record of the queue at all (default 60 s).
	WaitPoll, MinWork time.Duration
	// Now and Sleep are the clock (tests replace them).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// RunID names a fan-out; nil uses the Lambda request id (random without
	// one).
	RunID    func(ctx context.Context) string
	Logger   *slog.Logger
	Metrics  *metrics.Recorder
	Observer func(Outcome)
}

// Service runs analyses.
type Service struct{ o Options }

// New returns a service.
func New(o Options) *Service {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.BatchParallel <= 0 {
		o.BatchParallel = 4
	}
	if o.RecentLimit <= 0 {
		o.RecentLimit = 10
	}
	if o.MaxCompletionTokens <= 0 {
		o.MaxCompletionTokens = deploy.DefaultXAIMaxCompletionTokens
	}
	if o.Lease <= 0 {
		o.Lease = deploy.AnalyzePortfolio.Timeout
	}
	if o.WaitPoll <= 0 {
		o.WaitPoll = 2 * time.Second
	}
	if o.MinWork <= 0 {
		o.MinWork = 60 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = retry.Sleep
	}
	if o.RunID == nil {
		o.RunID = RunID
	}
	if o.Sessions == nil {
		o.Sessions = Sessions
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NoLLMReason == "" {
		o.NoLLMReason = "xAI API key not configured"
	}
	return &Service{o: o}
}

// RunID is logging.RunID: the Lambda request id, else a random one.
func RunID(ctx context.Context) string { return logging.RunID(ctx) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Sessions counts the NYSE trading sessions after from up to and including
// to (YYYY-MM-DD; at most two years apart, 0 if to is not after from).
func Sessions(from, to string) int {
	f, err1 := time.Parse(time.DateOnly, from)
	t, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil || err2 != nil || !t.After(f) {
		return 0
	}
	n := 0
	for d := f.AddDate(0, 0, 1); !d.After(t) && d.Sub(f) < 2*366*24*time.Hour; d = d.AddDate(0, 0, 1) {
		if marketdata.IsTradingDay(d.Format(time.DateOnly)) {
			n++
		}
	}
	return n
}

// Invoke is the Lambda handler's body: an SQS event (its records from the
// analysis queue) goes to HandleQueue, anything else is an Event for
// Handle. The queue path never sends to the queue: it analyzes the one
// portfolio each message names, so the function cannot loop on itself.
func (s *Service) Invoke(ctx context.Context, raw json.RawMessage) (any, error) {
	if isQueueEvent(raw) {
		var ev events.SQSEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("analyzePortfolio: SQS event: %w", err)
		}
		for _, r := range ev.Records {
			if r.EventSource != "aws:sqs" {
				return nil, fmt.Errorf("analyzePortfolio: record %s has eventSource %q, not aws:sqs", r.MessageId, r.EventSource)
			}
		}
		return s.HandleQueue(ctx, ev)
	}
	ev, err := DecodeEvent(raw)
	if err != nil {
		return nil, err
	}
	return s.Handle(ctx, ev)
}

// Handle runs a scheduled or manual invocation. One portfolio (the named
// one, or the default) is analyzed here and a failure is returned as the
// error (nothing is stored). "*" or a list fans out (fanOut).
func (s *Service) Handle(ctx context.Context, ev Event) (Result, error) {
	if err := ev.check(); err != nil {
		return newResult(), err
	}
	if len(ev.PortfolioNames) > 0 {
		return s.fanOut(ctx, ev.PortfolioNames, ev.Force)
	}
	name := strings.TrimSpace(ev.PortfolioName)
	if name == AllPortfolios {
		return s.fanOut(ctx, nil, ev.Force)
	}
	if name == "" {
		name = s.o.DefaultPortfolio
	}
	res := newResult()
	o, err := s.one(ctx, name, ev.Force, "")
	if err != nil {
		o.Status, o.Error = OutcomeFailed, err.Error()
	}
	s.settle(ctx, o)
	res.add(o)
	return res, err
}

// HandleQueue analyzes the portfolio of each record (the queue's batch size
// is 1: one portfolio per invocation and deadline). A record is
// acknowledged when its portfolio has a current analysis (stored or
// reused) or nothing to analyze (skipped, counted, logged), and for a
// poison message (counted as failed, logged); any other failure hands it
// back in BatchItemFailures, to be received again after the visibility
// timeout and dead-lettered after deploy.AnalysisMaxReceiveCount receives.
func (s *Service) HandleQueue(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, rec := range ev.Records {
		handBack := func() {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
		receives, _ := strconv.Atoi(rec.Attributes["ApproximateReceiveCount"])
		m, err := analysisqueue.Decode([]byte(rec.Body))
		if err != nil {
			s.o.Metrics.Add(deploy.AnalysisFailed, 1)
			s.o.Logger.ErrorContext(ctx, "poison analysis message acknowledged", "messageId", rec.MessageId, "error", err.Error())
			s.observe(Outcome{Portfolio: "?", Status: OutcomeFailed, Error: err.Error()})
			continue
		}
		if dl, ok := ctx.Deadline(); ok && dl.Sub(s.o.Now()) < s.o.MinWork {
			s.o.Logger.WarnContext(ctx, "no time left to start: message handed back", "portfolio", m.Portfolio, "messageId", rec.MessageId)
			handBack()
			continue
		}
		o, err := s.one(ctx, m.Portfolio, m.Force, m.RunID)
		switch {
		case err == nil:
		case isNothingToAnalyze(err):
			o.Status, o.Reason = OutcomeSkipped, err.Error()
		default:
			o.Status, o.Error = OutcomeFailed, err.Error()
			handBack()
			attrs := []any{"portfolio", m.Portfolio, "messageId", rec.MessageId, "receiveCount", receives, "error", err.Error()}
			if receives >= deploy.AnalysisMaxReceiveCount {
				s.o.Logger.ErrorContext(ctx, "analysis failed on its last receive: the message goes to the dead-letter queue", attrs...)
			} else {
				s.o.Logger.ErrorContext(ctx, "analysis failed: message handed back to the queue", attrs...)
			}
		}
		s.settle(ctx, o)
	}
	return resp, nil
}

// isNothingToAnalyze tells portfolio-api's data (an empty or unknown
// portfolio, a name this service will not put into a prompt) from a
// failure: retrying cannot help, so a queued message for it is acknowledged.
func isNothingToAnalyze(err error) bool {
	return errors.Is(err, ErrNoPositions) || errors.Is(err, ErrUnknownPortfolio) || errors.Is(err, analysis.ErrInvalidName)
}

// settle counts an outcome and tells the observer.
func (s *Service) settle(ctx context.Context, o Outcome) {
	switch o.Status {
	case OutcomeOK, OutcomeFallback, OutcomeReused:
		s.o.Metrics.Add(deploy.AnalysesAnalyzed, 1)
	case OutcomeFailed:
		s.o.Metrics.Add(deploy.AnalysisFailed, 1)
	case OutcomeSkipped:
		s.o.Metrics.Add(deploy.AnalysisSkipped, 1)
		s.o.Logger.WarnContext(ctx, "portfolio skipped: nothing to analyze", "portfolio", o.Portfolio, "reason", o.Reason)
	}
	s.observe(o)
}

func (s *Service) observe(o Outcome) {
	if s.o.Observer != nil {
		s.o.Observer(o)
	}
}

// one analyzes one portfolio; the Outcome is filled as far as known even on
// error. name is used exactly as given (only checked): it must match the
// shared table's name to be found, and the analysis is stored under it.
// runID keys a forced run's reservation (a redelivered forced message pays
// once); "" makes a forced run's reservation its own.
func (s *Service) one(ctx context.Context, name string, force bool, runID string) (Outcome, error) {
	out := Outcome{Portfolio: name}
	if _, err := analysis.ValidatePortfolioName(name); err != nil {
		return out, err
	}
	fail := func(err error) (Outcome, error) {
		level := slog.LevelError
		if isNothingToAnalyze(err) {
			level = slog.LevelWarn
		}
		s.o.Logger.Log(ctx, level, "analysis failed", "portfolio", name, "error", err)
		return out, err
	}
	now := s.o.Now().UTC().Truncate(time.Millisecond)
	in, err := s.gather(ctx, name, now)
	if err != nil {
		return fail(err)
	}
	prompt, err := analysis.BuildPrompt(in)
	if err != nil {
		return fail(fmt.Errorf("build prompt for %q: %w", name, err))
	}
	requested := analysis.RulesName
	if s.o.LLM != nil {
		requested = s.o.LLM.Model()
	}
	out.DataAsOf = in.DataAsOf()

	if !force {
		prev, err := s.reusable(ctx, name, out.DataAsOf, requested, prompt.InputHash)
		if err != nil {
			return fail(err)
		}
		if prev != nil {
			return s.reused(ctx, out, *prev), nil
		}
	}
	parts := []string{name, out.DataAsOf, prompt.Version, prompt.TemplateSHA256, requested, prompt.InputHash}
	if force {
		if runID == "" {
			runID = randomHex(16)
		}
		parts = append(parts, "force", runID)
	}
	res, err := s.reserve(ctx, reservationdb.KeyOf(parts...), name, out.DataAsOf, now)
	if err != nil {
		return fail(err)
	}
	if !res.won {
		it, err := s.find(ctx, name, res.held.Analysis)
		if err != nil {
			return fail(err)
		}
		out.Reason = "another run analyzed the same data, prompt and model"
		out.Status, out.Timestamp, out.Model = OutcomeReused, res.held.Analysis, it.Model
		s.o.Logger.InfoContext(ctx, "analysis reused", "portfolio", name, "timestamp", out.Timestamp, "dataAsOf", out.DataAsOf, "via", "reservation")
		return out, nil
	}
	r := res.held
	if !force {
		// The reservation's previous owner may have stored the analysis and
		// died before marking it done.
		prev, err := s.reusable(ctx, name, out.DataAsOf, requested, prompt.InputHash)
		if err != nil {
			s.release(ctx, r)
			return fail(err)
		}
		if prev != nil {
			r.Analysis, r.Status = analysisdb.FormatTime(prev.Timestamp), prev.Status
			s.complete(ctx, r)
			return s.reused(ctx, out, *prev), nil
		}
	}

	v := s.consult(ctx, prompt, in)
	missing, stale := in.Flagged()
	item := analysisdb.Item{
		Portfolio: name, Timestamp: now, Analysis: v.result.Analysis, Model: v.model, DataAsOf: out.DataAsOf,
		Result: v.result, Missing: missing, Stale: stale, Excluded: excludedList(in.Excluded),
		PromptVersion: prompt.Version, PromptSHA256: prompt.TemplateSHA256, InputHash: prompt.InputHash,
		RequestedModel: requested, SystemFingerprint: v.fingerprint,
		Usage: analysisdb.Usage{PromptTokens: v.usage.PromptTokens, CachedPromptTokens: v.usage.CachedPromptTokens,
			CompletionTokens: v.usage.CompletionTokens, TotalTokens: v.usage.TotalTokens, ReasoningTokens: v.usage.ReasoningTokens},
		CostUSD: v.usage.CostUSD, LatencyMs: v.latency.Milliseconds(), Attempts: v.attempts, Calls: v.calls,
		Status: analysisdb.StatusOK, Reason: v.reason(),
	}
	if item.Reason != "" {
		item.Status = analysisdb.StatusFallback
	}
	s.o.Metrics.Add(deploy.LLMCalls, float64(v.calls))
	s.o.Metrics.Add(deploy.LLMPromptTokens, float64(v.usage.PromptTokens))
	s.o.Metrics.Add(deploy.LLMCachedTokens, float64(v.usage.CachedPromptTokens))
	s.o.Metrics.Add(deploy.LLMCompletionTokens, float64(v.usage.CompletionTokens))
	s.o.Metrics.Add(deploy.LLMReasoningTokens, float64(v.usage.ReasoningTokens))
	if item.CostUSD != nil {
		s.o.Metrics.Add(deploy.LLMCostUSD, *item.CostUSD)
	}
	if err := s.o.Store.Put(ctx, item); err != nil {
		s.release(ctx, r)
		return fail(fmt.Errorf("store analysis of %q: %w", name, err))
	}
	s.o.Metrics.Add(deploy.AnalysesStored, 1)
	// A fallback forced by an outage is worth another try by a later run;
	// any other result is final for this key.
	if v.outage {
		s.release(ctx, r)
	} else {
		r.Analysis, r.Status = analysisdb.FormatTime(now), item.Status
		s.complete(ctx, r)
	}
	out.Status, out.Timestamp, out.Model, out.Reason, out.Calls = item.Status, analysisdb.FormatTime(now), item.Model, item.Reason, v.calls
	attrs := []any{"portfolio", name, "status", item.Status, "model", item.Model, "requestedModel", requested, "dataAsOf", out.DataAsOf,
		"tickers", len(in.Positions), "missing", len(missing), "stale", len(stale), "excluded", len(in.Excluded), "calls", v.calls,
		"attempts", v.attempts, "latencyMs", item.LatencyMs, "promptTokens", v.usage.PromptTokens, "cachedPromptTokens", v.usage.CachedPromptTokens,
		"completionTokens", v.usage.CompletionTokens, "reasoningTokens", v.usage.ReasoningTokens}
	if item.CostUSD != nil {
		attrs = append(attrs, "costUsd", *item.CostUSD)
	}
	if item.Reason != "" {
		s.o.Metrics.Add(deploy.AnalysisFallback, 1)
		s.o.Logger.WarnContext(ctx, "analysis stored from the rules analyst", append(attrs, "reason", item.Reason)...)
	} else {
		s.o.Logger.InfoContext(ctx, "analysis stored", attrs...)
	}
	return out, nil
}

func (s *Service) reused(ctx context.Context, out Outcome, prev analysisdb.Item) Outcome {
	out.Status, out.Timestamp, out.Model, out.Reason = OutcomeReused, analysisdb.FormatTime(prev.Timestamp), prev.Model, "an analysis of the same data, prompt version and model is stored"
	s.o.Logger.InfoContext(ctx, "analysis reused", "portfolio", out.Portfolio, "timestamp", out.Timestamp, "dataAsOf", out.DataAsOf)
	return out
}

// find reads the stored analysis a done reservation names.
func (s *Service) find(ctx context.Context, name, timestamp string) (analysisdb.Item, error) {
	items, err := s.o.Store.Recent(ctx, name, s.o.RecentLimit)
	if err != nil && !errors.Is(err, analysisdb.ErrUnreadable) {
		return analysisdb.Item{}, fmt.Errorf("read the analysis of %q another run stored: %w", name, err)
	}
	for _, it := range items {
		if analysisdb.FormatTime(it.Timestamp) == timestamp {
			return it, nil
		}
	}
	// Not among the newest: it exists (the reservation says so), only its
	// details are not shown.
	return analysisdb.Item{}, nil
}

func excludedList(ex []analysis.Excluded) []string {
	out := make([]string, len(ex))
	for i, e := range ex {
		out[i] = e.Reason
	}
	return out
}

// reusable finds a stored analysis of the same portfolio, data date, prompt
// version, requested model and input data. Only a model's validated answer
// (status ok) is reused — a fallback caused by an outage gets another try —
// except when the rules analyst was requested, whose result is the same
// every time.
func (s *Service) reusable(ctx context.Context, name, dataAsOf, requested, inputHash string) (*analysisdb.Item, error) {
	items, err := s.o.Store.Recent(ctx, name, s.o.RecentLimit)
	switch {
	case errors.Is(err, analysisdb.ErrUnreadable):
		// An item that cannot be read cannot be reused either; it must not
		// block every later analysis of the portfolio.
		s.o.Logger.WarnContext(ctx, "stored analysis not readable, ignored for reuse", "portfolio", name, "error", err)
	case err != nil:
		return nil, fmt.Errorf("look for a stored analysis of %q: %w", name, err)
	}
	for i, it := range items {
		if it.DataAsOf == dataAsOf && it.PromptVersion == analysis.PromptVersion && it.RequestedModel == requested && it.InputHash == inputHash &&
			(it.Status == analysisdb.StatusOK || requested == analysis.RulesName) {
			return &items[i], nil
		}
	}
	return nil, nil
}

// gather reads the holdings and the newest ticker-data row of every symbol.
func (s *Service) gather(ctx context.Context, name string, now time.Time) (analysis.Input, error) {
	_, positions, invalid, err := s.o.Portfolios.Holdings(ctx, name)
	if err != nil {
		if errors.Is(err, ErrUnknownPortfolio) {
			return analysis.Input{}, fmt.Errorf("portfolio %q: %w", name, ErrUnknownPortfolio)
		}
		return analysis.Input{}, fmt.Errorf("read holdings of %q: %w", name, err)
	}
	in := analysis.Input{Portfolio: name, LastTradingDay: s.o.LastTradingDay(now)}
	for _, iv := range invalid {
		in.Excluded = append(in.Excluded, analysis.Excluded{Value: iv.Value, Reason: fmt.Sprintf("%s %s: %s", iv.Table, iv.Key, iv.Reason)})
	}
	// One position per symbol: lots of the same symbol are summed (a
	// quantity or cost is only known when every lot has it). A cost basis
	// is a lot's total cost, so the sum is the position's total cost.
	bySymbol := map[string]*analysis.Position{}
	var order []string
	for _, pos := range positions {
		sym, err := symbol.Normalize(pos.Symbol)
		if err != nil {
			in.Excluded = append(in.Excluded, analysis.Excluded{Value: pos.Symbol, Reason: err.Error()})
			continue
		}
		if cur, ok := bySymbol[sym]; ok {
			cur.Quantity = sum(cur.Quantity, pos.Quantity)
			cur.CostBasis = sum(cur.CostBasis, pos.CostBasis)
			continue
		}
		bySymbol[sym] = &analysis.Position{Symbol: sym, Quantity: pos.Quantity, CostBasis: pos.CostBasis}
		order = append(order, sym)
	}
	for _, e := range in.Excluded {
		s.o.Logger.WarnContext(ctx, "symbol excluded from analysis", "portfolio", name, "reason", e.Reason)
	}
	if len(in.Excluded) > 0 {
		s.o.Metrics.Add(deploy.InvalidSymbols, float64(len(in.Excluded)))
	}
	if len(order) == 0 {
		return in, fmt.Errorf("portfolio %q: %w", name, ErrNoPositions)
	}
	slices.Sort(order)
	if len(order) > analysis.MaxPositions {
		return in, retry.Permanent(fmt.Errorf("portfolio %q has %d symbols; at most %d can be analyzed", name, len(order), analysis.MaxPositions))
	}
	rows, err := s.latest(ctx, order)
	if err != nil {
		return in, err
	}
	for i, sym := range order {
		pos := *bySymbol[sym]
		r := rows[i]
		switch {
		case r == nil:
			pos.Status = analysis.DataMissing
		default:
			snap := r.Snapshot
			price := snap.Price
			pos.Price, pos.RSI, pos.MA50, pos.MA200 = &price, snap.RSI, snap.MA50, snap.MA200
			pos.High52W, pos.Low52W = snap.High52W, snap.Low52W
			pos.Return1MPct, pos.Return3MPct, pos.Return12MPct = snap.Return1MPct, snap.Return3MPct, snap.Return12MPct
			pos.Volatility20DPct, pos.ATR = snap.Volatility20DPct, snap.ATR
			pos.AsOf = r.AsOf
			pos.Status = analysis.DataOK
			if r.AsOf < in.LastTradingDay {
				pos.Status = analysis.DataStale
				pos.StaleSessions = max(s.o.Sessions(r.AsOf, in.LastTradingDay), 1)
			}
		}
		in.Positions = append(in.Positions, pos)
	}
	return in, nil
}

func sum(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	v := *a + *b
	return &v
}

// latest queries the newest row of each symbol, at most Parallel at a time.
// The first error cancels the rest.
func (s *Service) latest(ctx context.Context, symbols []string) ([]*tickerdb.Row, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows := make([]*tickerdb.Row, len(symbols))
	sem := make(chan struct{}, s.o.Parallel)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for i, sym := range symbols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			row, ok, err := s.o.TickerData.Latest(ctx, sym)
			if err != nil {
				once.Do(func() { firstErr = fmt.Errorf("read latest ticker data of %s: %w", sym, err); cancel() })
				return
			}
			if ok {
				rows[i] = &row
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read latest ticker data: %w", err)
	}
	return rows, nil
}
