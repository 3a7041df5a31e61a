package analyzer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/retry"
)

// ErrUnknownPortfolio is wrapped by Portfolios.Holdings when no portfolio
// has the requested name.
var ErrUnknownPortfolio = errors.New("unknown portfolio")

// ErrNoPositions means the portfolio has no valid position to analyze.
var ErrNoPositions = errors.New("portfolio has no valid positions")

// ErrBusy means another run holds the claim of the same work (a
// portfolio's analysis, a batch of tickers) and did not finish within this
// invocation's time: the message is handed back (it will find the result).
var ErrBusy = errors.New("another run is doing the same paid work")

// Holding is one position as the shared tables hold it: the symbol as
// written (not yet normalized), the quantity and the total cost when known.
type Holding struct {
	Symbol    string
	Quantity  *float64
	CostBasis *float64
}

// Portfolios reads the shared portfolio tables.
type Portfolios interface {
	// Names lists the name of every portfolio.
	Names(ctx context.Context) ([]string, error)
	// Holdings returns a portfolio's positions and the items rejected
	// (with why); an error wrapping ErrUnknownPortfolio when no portfolio
	// has that name.
	Holdings(ctx context.Context, name string) ([]Holding, []analysis.Excluded, error)
	// Symbols lists every symbol held in any portfolio, normalized,
	// sorted, unique.
	Symbols(ctx context.Context) ([]string, error)
}

// MarketData reads a symbol's newest market data (its ticker-data row).
type MarketData interface {
	Latest(ctx context.Context, symbol string) (indicators.Snapshot, bool, error)
}

// Analyses keeps the stored analyses. Recent returns an error wrapping
// analysis.ErrUnreadable, with the readable records, when some could not
// be decoded.
type Analyses interface {
	Put(ctx context.Context, r analysis.Record) error
	Recent(ctx context.Context, portfolio string, limit int) ([]analysis.Record, error)
}

// Ledger is the analysis ledger (analysis.Claim, analysis.ScoreEntry):
// claims of paid work, the answers paid for them, and the tickers' scores.
type Ledger interface {
	// Claim takes a claim, or returns the one that holds its key.
	Claim(ctx context.Context, c analysis.Claim) (analysis.Claim, bool, error)
	// Save writes the caller's claim with its paid answers.
	Save(ctx context.Context, c analysis.Claim) error
	// Complete marks the caller's claim done.
	Complete(ctx context.Context, c analysis.Claim) error
	// Release gives up the caller's claim, keeping its paid answers.
	Release(ctx context.Context, c analysis.Claim) error
	// Scores reads score entries by key.
	Scores(ctx context.Context, keys []string) (map[string]analysis.ScoreEntry, error)
	// Assign writes a pending score entry unless its key has one.
	Assign(ctx context.Context, e analysis.ScoreEntry) (bool, error)
	// Replan writes a pending score entry naming a new batch over the
	// entry of its key, if that one is still pending in batch from.
	Replan(ctx context.Context, e analysis.ScoreEntry, from string) (bool, error)
	// Settle writes a done score entry, if its batch still owns it.
	Settle(ctx context.Context, e analysis.ScoreEntry) error
}

// SendFailure is a message the queue did not accept.
type SendFailure struct {
	Message      analysisqueue.Message
	Code, Reason string
}

// Queue is the analysis queue the fan-out sends to.
type Queue interface {
	Send(ctx context.Context, msgs []analysisqueue.Message) (int, []SendFailure, error)
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

// Options configure a Service.
type Options struct {
	Portfolios Portfolios
	MarketData MarketData
	Analyses   Analyses
	Ledger     Ledger
	// Queue is the analysis queue of the fan-out; nil refuses to fan out.
	Queue Queue
	// LLM is nil when no API key is configured: every analysis then comes
	// from the rules analyst with NoLLMReason.
	LLM         LLM
	NoLLMReason string
	// Manager is who writes a portfolio's overview: deploy.ManagerModel
	// (the model, one call per portfolio) or deploy.ManagerRules (the
	// rules, no call); deploy.DefaultAnalysisManager if "".
	Manager string
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
	// Parallel bounds the concurrent market-data and ledger queries
	// (default 8) and the fan-out's latest-analysis queries.
	Parallel int
	// BatchParallel bounds the ticker batches one portfolio runs at once
	// (default 4); waiting for another run's batch takes none of them.
	BatchParallel int
	// RecentLimit is how many stored analyses are compared for reuse (default 10).
	RecentLimit int
	// Lease is how long a claim is held when the context has no deadline
	// (default analyzePortfolio's timeout); with one, the lease is the
	// deadline.
	Lease time.Duration
	// WaitPoll is how often a run waiting for another run's claim looks
	// again (default 2 s); MinWork the least time left to wait or start a
	// record of the queue at all (default 60 s).
	WaitPoll, MinWork time.Duration
	// PlannedLease is how long a ticker batch the fan-out planned is left
	// to its queue message (default 90 s): a portfolio that needs it
	// meanwhile waits for it rather than run it itself.
	PlannedLease time.Duration
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

// DefaultPlannedLease is Options.PlannedLease's default: the fan-out queues
// the batches first, so their messages are mostly received within it; a
// portfolio that waits it out still has most of its invocation left.
const DefaultPlannedLease = 90 * time.Second

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
	if o.Manager == "" {
		o.Manager = deploy.DefaultAnalysisManager
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
	if o.PlannedLease <= 0 {
		o.PlannedLease = DefaultPlannedLease
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
	if o.LastTradingDay == nil {
		o.LastTradingDay = marketdata.LastTradingDay
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
// Handle. The queue path never sends to the queue: it does the one job
// each message names, so the function cannot loop on itself.
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

// HandleQueue does the job of each record (the queue's batch size is 1:
// one job per invocation and deadline): a portfolio's analysis, or the
// scoring of a batch of tickers. A record is acknowledged when its job is
// done (stored, reused) or there is nothing to do (skipped, counted,
// logged), and for a poison message (counted as failed, logged); any other
// failure hands it back in BatchItemFailures, to be received again after
// the visibility timeout and dead-lettered after
// deploy.AnalysisMaxReceiveCount receives.
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
			// Counted as every hand-back is: a message that keeps coming
			// back this way reaches the dead-letter queue.
			s.o.Metrics.Add(deploy.AnalysisFailed, 1)
			s.o.Logger.WarnContext(ctx, "no time left to start: message handed back", "job", m.Label(), "messageId", rec.MessageId, "receiveCount", receives)
			handBack()
			continue
		}
		failed := func(err error) {
			handBack()
			attrs := []any{"job", m.Label(), "messageId", rec.MessageId, "receiveCount", receives, "error", err.Error()}
			if receives >= deploy.AnalysisMaxReceiveCount {
				s.o.Logger.ErrorContext(ctx, "analysis failed on its last receive: the message goes to the dead-letter queue", attrs...)
			} else {
				s.o.Logger.ErrorContext(ctx, "analysis failed: message handed back to the queue", attrs...)
			}
		}
		if m.Kind == analysisqueue.KindTickers {
			if err := s.batchJob(ctx, m.Batch); err != nil {
				s.o.Metrics.Add(deploy.AnalysisFailed, 1)
				failed(err)
			}
			continue
		}
		o, err := s.one(ctx, m.Portfolio, m.Force, m.RunID)
		switch {
		case err == nil:
		case isNothingToAnalyze(err):
			o.Status, o.Reason = OutcomeSkipped, err.Error()
		default:
			o.Status, o.Error = OutcomeFailed, err.Error()
			failed(err)
		}
		s.settle(ctx, o)
	}
	return resp, nil
}

// isNothingToAnalyze tells portfolio-api's data (an empty or unknown
// portfolio, a name this service will not put into a key) from a failure:
// retrying cannot help, so a queued message for it is acknowledged.
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

// requested is the model asked for: the LLM's, or the rules analyst's.
func (s *Service) requested() string {
	if s.o.LLM == nil {
		return analysis.RulesName
	}
	return s.o.LLM.Model()
}

// manager is who writes the overview in effect: the configured manager,
// the rules when there is no model.
func (s *Service) manager() string {
	if s.o.LLM == nil {
		return deploy.ManagerRules
	}
	return s.o.Manager
}
