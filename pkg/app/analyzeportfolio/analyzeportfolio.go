// Package analyzeportfolio wires the analyzePortfolio function: the shared
// portfolio tables and the ticker-data table (DynamoDB) in, the analysis
// model (xAI, its key from Secrets Manager) or the rules analyst, the
// portfolio-analyses table (DynamoDB) out.
package analyzeportfolio

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/secrets"
	"github.com/zsmseven/backend/pkg/tickerdb"
	"github.com/zsmseven/backend/pkg/xai"
)

// Handler is the function's Lambda handler.
type Handler = func(context.Context, analyzer.Event) (analyzer.Result, error)

var _ analyzer.LLM = (*xai.Client)(nil)

// New builds the handler as the Lambda's main does: FromEnv, then Build.
func New(ctx context.Context, lookup config.Lookup, out io.Writer) (Handler, error) {
	d, err := FromEnv(ctx, lookup, out)
	if err != nil {
		return nil, err
	}
	return Build(d), nil
}

// Deps are the handler's configuration, adapters and parameters.
type Deps struct {
	Config     config.AnalyzePortfolio
	Portfolios analyzer.Portfolios
	TickerData analyzer.TickerData
	Store      analyzer.Store
	// Keys resolves the xAI key (deploy.SecretKeyXAI).
	Keys app.Keys
	// Out receives JSON logs and EMF metrics.
	Out io.Writer
	// XAIRetry is the xAI client's retry policy; nil is its default.
	XAIRetry *retry.Policy
	// XAIAttemptTimeout bounds one HTTP attempt; 0 is only the deadline.
	XAIAttemptTimeout time.Duration
	// Now is the analyzer's clock (which trading day is current); nil is
	// time.Now (`zsm run --date` analyzes as at 01:00 the morning after).
	Now func() time.Time
}

// FromEnv reads the configuration (a problem fails here, in one line naming
// the variable) and builds the production adapters: the shared-table
// reader, the ticker-data store, the analyses repository and the key
// resolver (XAI_API_KEY, else the stage's secret). The AWS clients honour
// AWS_ENDPOINT_URL_DYNAMODB / _SECRETS_MANAGER for local servers.
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
		Config:     cfg,
		Portfolios: portfoliodb.NewReader(ddb, cfg.UserPortfoliosTable, cfg.PortfolioPositionsTable),
		TickerData: tickerdb.NewStore(ddb, cfg.TickerDataTable),
		Store:      analysisdb.New(ddb, cfg.PortfolioAnalysesTable),
		Keys:       secrets.NewKeys(lookup, sm, cfg.APIKeysSecretARN),
		Out:        out,
	}, nil
}

// Build returns the handler over d. The xAI key is resolved on each
// invocation (cached once read), so a secret that cannot be read yields a
// rules-analyst result that says why rather than a function that cannot
// start.
func Build(d Deps) Handler {
	cfg := d.Config
	logger := logging.New(d.Out, cfg.LogLevel).With("function", "analyzePortfolio", "stage", cfg.Stage)
	return func(ctx context.Context, ev analyzer.Event) (analyzer.Result, error) {
		rec := metrics.New(d.Out, cfg.Stage)
		defer func() {
			if err := rec.Flush(); err != nil {
				logger.ErrorContext(ctx, "flush metrics", "error", err)
			}
		}()
		opts := analyzer.Options{
			Portfolios: d.Portfolios, TickerData: d.TickerData, Store: d.Store,
			DefaultPortfolio: cfg.DefaultPortfolio, LastTradingDay: marketdata.LastTradingDay,
			PortfolioBudget: cfg.PortfolioBudget, Logger: logger, Metrics: rec, Now: d.Now,
		}
		key, err := d.Keys.Get(ctx, deploy.SecretKeyXAI)
		switch {
		case err == nil:
			opts.LLM = xai.New(xai.Options{
				URL: cfg.XAIAPIURL, APIKey: key, Model: cfg.XAIModel, MaxCompletionTokens: cfg.XAIMaxCompletionTokens,
				Reserve: cfg.XAIReserve, Retry: d.XAIRetry, AttemptTimeout: d.XAIAttemptTimeout,
			})
		case errors.Is(err, secrets.ErrNotSet):
			opts.NoLLMReason = "xAI API key not configured (no XAI_API_KEY and none in the secret)"
		default:
			// The error names the secret, never its content.
			opts.NoLLMReason = "xAI API key unavailable: " + err.Error()
			logger.ErrorContext(ctx, "read xAI API key", "error", err)
		}
		model := "none (rules analyst)"
		if opts.LLM != nil {
			model = opts.LLM.Model()
		}
		logger.InfoContext(ctx, "analyze", "portfolio", ev.PortfolioName, "force", ev.Force, "model", model)
		res, err := analyzer.New(opts).Handle(ctx, ev)
		if err != nil {
			logger.ErrorContext(ctx, "analyzePortfolio failed", "error", err, slog.Any("done", res.Done), slog.Any("failed", res.Failed))
		}
		return res, err
	}
}
