// Package analyzeportfolio wires the analyzePortfolio function: the shared
// portfolio tables and the ticker-data table (DynamoDB) in, the analysis
// model (the provider deploy.EnvModelProvider names, xAI by default, its key from
// Secrets Manager; Models) or the rules analyst, the
// portfolio-analyses table and the analysis ledger (DynamoDB) out, and
// the analysis queue (SQS), to which its fan-out sends and from which it
// is invoked. The use case's ports are in the analysis's words; the
// adapters of portfolio-api's and ticker-data's repositories, and the
// queue's sender, are here (Ports).
package analyzeportfolio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/secrets"
	"github.com/zsmseven/backend/pkg/xai"
)

// ModelOptions are what the wiring gives a provider's adapter besides the
// provider's configuration and key.
type ModelOptions struct {
	// Reserve is kept free before the invocation's deadline.
	Reserve time.Duration
	// Retry is the retry policy; nil is the adapter's default.
	Retry *retry.Policy
}

// NewModel builds a provider's adapter of the analysis-model port.
type NewModel func(m config.Model, key string, o ModelOptions) analyzer.LLM

// Models are the adapters of the model providers of the contract
// (deploy.ModelProviders), by name. A provider is an adapter package, its
// entry in the contract and its constructor here; the stage chooses it by
// configuration (CDK context modelProvider, deploy.EnvModelProvider).
var Models = map[string]NewModel{
	deploy.XAI.Name: func(m config.Model, key string, o ModelOptions) analyzer.LLM {
		return xai.New(xai.Options{
			URL: m.URL, APIKey: key, Model: m.Name, MaxCompletionTokens: m.MaxCompletionTokens,
			Reserve: o.Reserve, Retry: o.Retry, AttemptTimeout: m.AttemptTimeout,
		})
	},
}

// New builds the function as the Lambda's main does: FromEnv, then Build.
func New(ctx context.Context, lookup config.Lookup, out io.Writer) (*Function, error) {
	d, err := FromEnv(ctx, lookup, out)
	if err != nil {
		return nil, err
	}
	return Build(d), nil
}

// Deps are the function's configuration, adapters and parameters.
type Deps struct {
	Config config.AnalyzePortfolio
	// Ports are the repositories and the queue (AWS in production).
	Ports
	// Keys resolves the xAI key (deploy.SecretKeyXAI).
	Keys app.Keys
	// Out receives JSON logs and EMF metrics.
	Out io.Writer
	// ModelRetry is the model adapter's retry policy; nil is its default.
	ModelRetry *retry.Policy
	// Observer receives every portfolio's outcome (the CLI's progress).
	Observer func(analyzer.Outcome)
	// WaitPoll and MinWork tune the wait for another run's reservation and
	// the least time to start a queued portfolio (zero: the analyzer's
	// defaults, 2 s and 60 s); local runs on a scaled clock scale them.
	WaitPoll, MinWork time.Duration
	// PlannedLease is how long a portfolio waits for a planned ticker
	// batch's message before it runs the batch itself (zero: the
	// analyzer's default, 90 s).
	PlannedLease time.Duration
	// Now decides which trading day is current, hence which data is fresh
	// and which stale (`zsm run --date` analyzes as at the analysis schedule's time the morning
	// after); nil is time.Now. Only that: deadlines, reservation leases and
	// the stored timestamps always follow the real clock, which the
	// invocation's deadline is measured on.
	Now func() time.Time
}

// FromEnv reads the configuration (a problem fails here, in one line naming
// the variable) and builds the production adapters (AWS): the shared-table
// reader, the ticker-data store, the analyses repository, the ledger, the
// analysis-queue sender, and the key resolver (the provider's key variable,
// else the stage's secret). The AWS clients honour
// AWS_ENDPOINT_URL_DYNAMODB / _SQS / _SECRETS_MANAGER for local servers.
func FromEnv(ctx context.Context, lookup config.Lookup, out io.Writer) (Deps, error) {
	cfg, awsCfg, err := app.Load(ctx, lookup, config.LoadAnalyzePortfolio)
	if err != nil {
		return Deps{}, err
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	var sm secrets.SecretsManagerAPI
	if cfg.APIKeysSecretARN != "" {
		sm = secretsmanager.NewFromConfig(awsCfg)
	}
	return Deps{
		Config: cfg,
		Ports:  AWS(ddb, sqs.NewFromConfig(awsCfg), cfg),
		Keys:   secrets.NewKeys(lookup, sm, cfg.APIKeysSecretARN),
		Out:    out,
	}, nil
}

// Function is analyzePortfolio: Invoke is its Lambda handler; Run and
// Consume are the two triggers typed, for callers in Go.
type Function struct {
	d      Deps
	logger *slog.Logger

	mu     sync.Mutex
	llm    analyzer.LLM
	llmKey string
}

// Build returns the function over d. The xAI key is resolved on each
// invocation (cached once read), so a secret that cannot be read yields a
// rules-analyst result that says why rather than a function that cannot
// start; the client is kept while the key stays the same, with what it
// learnt about the model (a refused reasoning_effort).
func Build(d Deps) *Function {
	return &Function{d: d, logger: logging.New(d.Out, d.Config.LogLevel).With("function", "analyzePortfolio", "stage", d.Config.Stage)}
}

// Invoke handles any event: an SQS event of the analysis queue is consumed,
// one portfolio per message; any other is a scheduled or manual Event.
func (f *Function) Invoke(ctx context.Context, raw json.RawMessage) (any, error) {
	svc, done := f.service(ctx)
	defer done()
	res, err := svc.Invoke(ctx, raw)
	f.logResult(ctx, res, err)
	return res, err
}

// Run handles a scheduled or manual event.
func (f *Function) Run(ctx context.Context, ev analyzer.Event) (analyzer.Result, error) {
	svc, done := f.service(ctx)
	defer done()
	f.logger.InfoContext(ctx, "analyze", "portfolio", ev.PortfolioName, "portfolios", len(ev.PortfolioNames), "force", ev.Force)
	res, err := svc.Handle(ctx, ev)
	f.logResult(ctx, res, err)
	return res, err
}

// Consume handles a batch of the analysis queue.
func (f *Function) Consume(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	svc, done := f.service(ctx)
	defer done()
	return svc.HandleQueue(ctx, ev)
}

func (f *Function) logResult(ctx context.Context, res any, err error) {
	if err == nil {
		return
	}
	attrs := []any{"error", err}
	if r, ok := res.(analyzer.Result); ok {
		attrs = append(attrs, slog.Any("done", r.Done), slog.Any("failed", r.Failed))
	}
	f.logger.ErrorContext(ctx, "analyzePortfolio failed", attrs...)
}

// lastTradingDay is the last completed trading day at Deps.Now (the
// analyzer's own clock, the real one, is ignored for it).
func (f *Function) lastTradingDay(now time.Time) string {
	if f.d.Now != nil {
		now = f.d.Now()
	}
	return marketdata.LastTradingDay(now)
}

// service builds the use case for one invocation, with its own metrics
// recorder; done flushes the metrics.
func (f *Function) service(ctx context.Context) (*analyzer.Service, func()) {
	cfg := f.d.Config
	rec := metrics.New(f.d.Out, cfg.Stage)
	opts := analyzer.Options{
		Portfolios: f.d.Portfolios, MarketData: f.d.MarketData, Analyses: f.d.Analyses, Ledger: f.d.Ledger, Queue: f.d.Queue,
		DefaultPortfolio: cfg.DefaultPortfolio, LastTradingDay: f.lastTradingDay, Manager: cfg.Manager,
		MaxCompletionTokens: cfg.Model.MaxCompletionTokens, ReasoningEffort: cfg.Model.ReasoningEffort,
		WaitPoll: f.d.WaitPoll, MinWork: f.d.MinWork, PlannedLease: f.d.PlannedLease,
		Logger: f.logger, Metrics: rec, Observer: f.d.Observer,
	}
	if llm, reason := f.model(ctx); llm != nil {
		opts.LLM = llm
	} else {
		opts.NoLLMReason = reason
	}
	return analyzer.New(opts), func() {
		if err := rec.Flush(); err != nil {
			f.logger.ErrorContext(ctx, "flush metrics", "error", err)
		}
	}
}

// model returns the adapter of the configured provider for the current key,
// or why there is none.
func (f *Function) model(ctx context.Context) (analyzer.LLM, string) {
	m := f.d.Config.Model
	key, err := f.d.Keys.Get(ctx, m.Provider.KeyName)
	switch {
	case errors.Is(err, secrets.ErrNotSet):
		return nil, m.Provider.Label + " API key not configured (no " + m.Provider.KeyName + " and none in the secret)"
	case err != nil:
		// The error names the secret, never its content.
		f.logger.ErrorContext(ctx, "read the model's API key", "provider", m.Provider.Name, "error", err)
		return nil, m.Provider.Label + " API key unavailable: " + err.Error()
	}
	newModel, ok := Models[m.Provider.Name]
	if !ok {
		return nil, "no adapter for the model provider " + m.Provider.Name
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The adapter is kept while the key stays the same, with what it learnt
	// about the model (a refused reasoning_effort).
	if f.llm == nil || f.llmKey != key {
		f.llm = newModel(m, key, ModelOptions{Reserve: f.d.Config.Reserve, Retry: f.d.ModelRetry})
		f.llmKey = key
	}
	return f.llm, ""
}
