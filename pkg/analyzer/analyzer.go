package analyzer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/portfoliodb"
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

// LLM is the analysis model (xai.Client, wired in pkg/app/analyzeportfolio),
// in the domain's words. Complete
// returns an error wrapping analysis.ErrTruncated for an answer cut off at
// the completion-token cap, and a classified error (package retry) when the
// call fails.
type LLM interface {
	// Model is the requested model name.
	Model() string
	Complete(ctx context.Context, req analysis.Request) (analysis.Completion, error)
}

var (
	_ Portfolios = (*portfoliodb.Reader)(nil)
	_ TickerData = (*tickerdb.Store)(nil)
	_ Store      = (*analysisdb.Repository)(nil)
)

// Options configure a Service.
type Options struct {
	Portfolios Portfolios
	TickerData TickerData
	Store      Store
	// LLM is nil when no API key is configured: every analysis then comes
	// from the rules analyst with NoLLMReason.
	LLM         LLM
	NoLLMReason string
	// DefaultPortfolio is analyzed when the event names none.
	DefaultPortfolio string
	// LastTradingDay is marketdata.LastTradingDay (injected to keep tests
	// independent of the calendar).
	LastTradingDay func(now time.Time) string
	// Parallel bounds the concurrent ticker-data queries (default 8).
	Parallel int
	// PortfolioBudget is the least remaining invocation time needed to start
	// another portfolio when analyzing all of them (default 90 s).
	PortfolioBudget time.Duration
	// RecentLimit is how many stored analyses are compared for reuse (default 10).
	RecentLimit int
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *metrics.Recorder
}

// Service runs analyses.
type Service struct{ o Options }

// New returns a service.
func New(o Options) *Service {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.PortfolioBudget <= 0 {
		o.PortfolioBudget = 90 * time.Second
	}
	if o.RecentLimit <= 0 {
		o.RecentLimit = 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NoLLMReason == "" {
		o.NoLLMReason = "xAI API key not configured"
	}
	return &Service{o: o}
}

// Handle runs one invocation. For one portfolio, a failure is returned as
// the error (nothing is stored). For "*", each portfolio is analyzed in turn
// while at least PortfolioBudget of the invocation remains; the others are
// skipped, as are portfolios without valid positions or with an invalid name
// (reported with the reason); the error names the portfolios that failed.
func (s *Service) Handle(ctx context.Context, ev Event) (Result, error) {
	name := strings.TrimSpace(ev.PortfolioName)
	if name == "" {
		name = s.o.DefaultPortfolio
	}
	res := Result{Portfolios: []Outcome{}, Done: []string{}, Skipped: []string{}, Failed: []string{}} // lists, never null, in the JSON answer
	if name != AllPortfolios {
		o, err := s.one(ctx, name, ev.Force)
		res.add(o)
		if err != nil {
			return res, err
		}
		return res, nil
	}
	all, err := s.o.Portfolios.List(ctx)
	if err != nil {
		return res, fmt.Errorf("list portfolios: %w", err)
	}
	names := make([]string, 0, len(all))
	for _, p := range all {
		if !slices.Contains(names, p.Name) {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		if dl, ok := ctx.Deadline(); ok && dl.Sub(s.o.Now()) < s.o.PortfolioBudget {
			res.add(Outcome{Portfolio: n, Status: OutcomeSkipped, Reason: fmt.Sprintf("less than %s of the invocation left", s.o.PortfolioBudget)})
			continue
		}
		o, err := s.one(ctx, n, ev.Force)
		// A portfolio with nothing to analyze, or a name this service will
		// not put into a prompt, is portfolio-api's data, not a failure of
		// the run: failing on it would fail (and alarm on) every night.
		if errors.Is(err, ErrNoPositions) || errors.Is(err, analysis.ErrInvalidName) {
			o = Outcome{Portfolio: o.Portfolio, Status: OutcomeSkipped, Reason: err.Error()}
		}
		res.add(o)
	}
	if len(res.Skipped) > 0 {
		s.o.Logger.WarnContext(ctx, "portfolios skipped", "skipped", res.Skipped)
	}
	if len(res.Failed) > 0 {
		return res, fmt.Errorf("analysis failed for %d of %d portfolios: %s", len(res.Failed), len(names), strings.Join(quoteAll(res.Failed), ", "))
	}
	return res, nil
}

func quoteAll(v []string) []string {
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// one analyzes one portfolio; the Outcome is filled even on error. name is
// used exactly as given (only checked): it must match the shared table's
// name to be found, and the analysis is stored under it.
func (s *Service) one(ctx context.Context, name string, force bool) (Outcome, error) {
	if _, err := analysis.ValidatePortfolioName(name); err != nil {
		return Outcome{Portfolio: name, Status: OutcomeFailed, Error: err.Error()}, err
	}
	out := Outcome{Portfolio: name}
	fail := func(err error) (Outcome, error) {
		out.Status, out.Error = OutcomeFailed, err.Error()
		level := slog.LevelError
		if errors.Is(err, ErrNoPositions) {
			level = slog.LevelWarn // an empty portfolio is skipped in "*" mode
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
	dataAsOf := in.DataAsOf()
	out.DataAsOf = dataAsOf

	if !force {
		prev, err := s.reusable(ctx, name, dataAsOf, requested, prompt.InputHash)
		if err != nil {
			return fail(err)
		}
		if prev != nil {
			out.Status, out.Timestamp, out.Model, out.Reason = OutcomeReused, analysisdb.FormatTime(prev.Timestamp), prev.Model, "an analysis of the same data, prompt version and model is stored"
			s.o.Logger.InfoContext(ctx, "analysis reused", "portfolio", name, "timestamp", out.Timestamp, "dataAsOf", dataAsOf)
			return out, nil
		}
	}

	v := s.consult(ctx, prompt, in)
	missing, stale := in.Flagged()
	item := analysisdb.Item{
		Portfolio: name, Timestamp: now, Analysis: v.result.Analysis, Model: v.model, DataAsOf: dataAsOf,
		Result: v.result, Missing: missing, Stale: stale, Excluded: excludedList(in.Excluded),
		PromptVersion: prompt.Version, PromptSHA256: prompt.TemplateSHA256, InputHash: prompt.InputHash,
		RequestedModel: requested, SystemFingerprint: v.fingerprint,
		Usage:     analysisdb.Usage{PromptTokens: v.usage.PromptTokens, CompletionTokens: v.usage.CompletionTokens, TotalTokens: v.usage.TotalTokens, ReasoningTokens: v.usage.ReasoningTokens},
		LatencyMs: v.latency.Milliseconds(), Attempts: v.attempts, Status: analysisdb.StatusOK, Reason: v.reason,
	}
	item.CostUSD = v.usage.CostUSD
	if v.reason != "" {
		item.Status, item.Model = analysisdb.StatusFallback, analysis.RulesName
	}
	s.o.Metrics.Add(metrics.LLMPromptTokens, float64(v.usage.PromptTokens))
	s.o.Metrics.Add(metrics.LLMCompletionTokens, float64(v.usage.CompletionTokens))
	if item.CostUSD != nil {
		s.o.Metrics.AddValue(metrics.LLMCostUSD, *item.CostUSD, "None")
	}
	if err := s.o.Store.Put(ctx, item); err != nil {
		return fail(fmt.Errorf("store analysis of %q: %w", name, err))
	}
	s.o.Metrics.Add(metrics.AnalysesStored, 1)
	out.Status, out.Timestamp, out.Model, out.Reason = item.Status, analysisdb.FormatTime(now), item.Model, item.Reason
	attrs := []any{"portfolio", name, "status", item.Status, "model", item.Model, "requestedModel", requested, "dataAsOf", dataAsOf,
		"tickers", len(in.Positions), "missing", len(missing), "stale", len(stale), "excluded", len(in.Excluded),
		"attempts", v.attempts, "latencyMs", item.LatencyMs, "promptTokens", v.usage.PromptTokens, "completionTokens", v.usage.CompletionTokens}
	if item.CostUSD != nil {
		attrs = append(attrs, "costUsd", *item.CostUSD)
	}
	if v.reason != "" {
		s.o.Metrics.Add(metrics.AnalysisFallback, 1)
		s.o.Logger.WarnContext(ctx, "analysis stored from the rules analyst", append(attrs, "reason", v.reason)...)
	} else {
		s.o.Logger.InfoContext(ctx, "analysis stored", attrs...)
	}
	return out, nil
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
	// quantity or cost is only known when every lot has it).
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
		s.o.Metrics.Add(metrics.InvalidSymbols, float64(len(in.Excluded)))
	}
	if len(order) == 0 {
		return in, fmt.Errorf("portfolio %q: %w", name, ErrNoPositions)
	}
	slices.Sort(order)
	if len(order) > analysis.MaxPositions {
		return in, fmt.Errorf("portfolio %q has %d symbols; at most %d can be analyzed", name, len(order), analysis.MaxPositions)
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
			price, rsi, ma := r.Price, r.RSI, r.MA50
			pos.Price, pos.RSI, pos.MA50, pos.AsOf = &price, rsi, ma, r.AsOf
			pos.Status = analysis.DataOK
			if r.AsOf < in.LastTradingDay {
				pos.Status = analysis.DataStale
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

// verdict is what the model (or the rules analyst) produced, with the audit.
type verdict struct {
	result      analysis.Result
	model       string
	fingerprint string
	usage       analysis.Usage
	attempts    int
	latency     time.Duration
	// reason is why the rules analyst was used; "" when the model's answer
	// was accepted.
	reason string
}

const truncatedProblem = "the answer was cut off at the completion token limit (finish_reason \"length\"): keep the analysis shorter"

// consult asks the model, with one repair attempt, and falls back to the
// rules analyst when there is no model, the API fails, or the answer does
// not validate.
func (s *Service) consult(ctx context.Context, p analysis.Prompt, in analysis.Input) verdict {
	v := verdict{}
	fallback := func(reason string) verdict {
		v.result, v.reason = analysis.Rules(in), reason
		return v
	}
	if s.o.LLM == nil {
		return fallback(s.o.NoLLMReason)
	}
	ask := func(msgs []analysis.Message) (analysis.Completion, error) {
		resp, err := s.o.LLM.Complete(ctx, analysis.Request{SchemaName: analysis.SchemaName, Schema: p.Schema, Messages: msgs})
		v.usage = v.usage.Add(resp.Usage)
		v.attempts += resp.Attempts
		v.latency += resp.Latency
		if resp.Model != "" {
			v.model = resp.Model
		}
		if resp.SystemFingerprint != "" {
			v.fingerprint = resp.SystemFingerprint
		}
		return resp, err
	}
	// check returns what is wrong with an answer (nil when it is valid).
	check := func(resp analysis.Completion, err error) (analysis.Result, []string, error) {
		if errors.Is(err, analysis.ErrTruncated) {
			return analysis.Result{}, []string{truncatedProblem}, nil
		}
		if err != nil {
			return analysis.Result{}, nil, err
		}
		res, perr := analysis.Parse([]byte(resp.Content), p.Symbols)
		var inv *analysis.InvalidAnswerError
		if errors.As(perr, &inv) {
			return analysis.Result{}, inv.Problems, nil
		}
		return res, nil, perr
	}

	resp, err := ask(p.Messages)
	res, problems, err := check(resp, err)
	if err != nil {
		return fallback(apiReason("xAI request failed", err))
	}
	if problems == nil {
		v.result = res
		return v
	}
	s.o.Logger.WarnContext(ctx, "model answer rejected, asking for a repair", "portfolio", in.Portfolio, "problems", len(problems), "first", problems[0])
	resp2, err := ask(analysis.RepairMessages(p, resp.Content, problems))
	res, problems2, err := check(resp2, err)
	if err != nil {
		return fallback(apiReason("xAI repair request failed", err))
	}
	if problems2 != nil {
		return fallback(capText("answer invalid after repair: "+strings.Join(problems2, "; "), 1000))
	}
	v.result = res
	return v
}

func apiReason(prefix string, err error) string {
	kind := "transient, retries exhausted"
	if retry.IsPermanent(err) {
		kind = "permanent"
	}
	return capText(fmt.Sprintf("%s (%s): %v", prefix, kind, err), 1000)
}

func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
