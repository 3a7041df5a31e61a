// Package functions wires each Lambda function: configuration, AWS clients,
// logger and metrics around the use case, returning the typed handler that
// lambdas/<fn>/main.go starts and the zsm CLI reuses.
package functions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/zsmseven/backend/pkg/analyses"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/portfolios"
	"github.com/zsmseven/backend/pkg/secrets"
	"github.com/zsmseven/backend/pkg/tickerdata"
	"github.com/zsmseven/backend/pkg/xai"
)

// AnalyzePortfolio builds the analyzePortfolio handler: configuration (a
// problem fails here, in one line naming the variable), AWS clients (which
// honour AWS_ENDPOINT_URL_DYNAMODB / _SECRETS_MANAGER for local endpoints),
// logger and metrics on out. The xAI key is resolved on each invocation
// (XAI_API_KEY first, then the stage's secret, cached once read), so a
// secret that cannot be read yields a rules-analyst result that says why
// rather than a function that cannot start.
func AnalyzePortfolio(ctx context.Context, lookup config.Lookup, out io.Writer) (func(context.Context, analyzer.Event) (analyzer.Result, error), error) {
	cfg, err := config.LoadAnalyzePortfolio(lookup)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	var sm secrets.SecretsManagerAPI
	if cfg.APIKeysSecretARN != "" {
		sm = secretsmanager.NewFromConfig(awsCfg)
	}
	return NewAnalyzePortfolio(AnalyzeDeps{
		Config:     cfg,
		Portfolios: portfolios.NewReader(ddb, cfg.UserPortfoliosTable, cfg.PortfolioPositionsTable),
		TickerData: tickerdata.NewStore(ddb, cfg.TickerDataTable),
		Store:      analyses.New(ddb, cfg.PortfolioAnalysesTable),
		Keys:       secrets.NewKeys(lookup, sm, cfg.APIKeysSecretARN),
		Out:        out,
	}), nil
}

// AnalyzeDeps are the adapters of the analyzePortfolio handler, so the CLI
// and tests can build it over their own clients.
type AnalyzeDeps struct {
	Config     config.AnalyzePortfolio
	Portfolios analyzer.Portfolios
	TickerData analyzer.TickerData
	Store      analyzer.Store
	// Keys resolves the xAI key.
	Keys interface {
		Get(ctx context.Context, name string) (string, error)
	}
	// Out receives JSON logs and EMF metrics.
	Out io.Writer
	// Options, if set, adjusts the service options (tests: clock, retry).
	Options func(*analyzer.Options, *xai.Options)
}

// NewAnalyzePortfolio returns the handler over deps.
func NewAnalyzePortfolio(d AnalyzeDeps) func(context.Context, analyzer.Event) (analyzer.Result, error) {
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
			PortfolioBudget: cfg.PortfolioBudget, Logger: logger, Metrics: rec,
		}
		xopts := xai.Options{URL: cfg.XAIAPIURL, Model: cfg.XAIModel, MaxCompletionTokens: cfg.XAIMaxCompletionTokens, Reserve: cfg.XAIReserve}
		key, err := d.Keys.Get(ctx, secrets.XAIAPIKey)
		switch {
		case err == nil:
			xopts.APIKey = key
		case errors.Is(err, secrets.ErrNotSet):
			opts.NoLLMReason = "xAI API key not configured (no XAI_API_KEY and none in the secret)"
		default:
			// The error names the secret, never its content.
			opts.NoLLMReason = "xAI API key unavailable: " + err.Error()
			logger.ErrorContext(ctx, "read xAI API key", "error", err)
		}
		if d.Options != nil {
			d.Options(&opts, &xopts)
		}
		if xopts.APIKey != "" {
			opts.LLM = xai.New(xopts)
		}
		logger.InfoContext(ctx, "analyze", "portfolio", ev.PortfolioName, "force", ev.Force, "model", llmName(opts.LLM))
		res, err := analyzer.New(opts).Handle(ctx, ev)
		if err != nil {
			logger.ErrorContext(ctx, "analyzePortfolio failed", "error", err, slog.Any("done", res.Done), slog.Any("failed", res.Failed))
		}
		return res, err
	}
}

func llmName(l analyzer.LLM) string {
	if l == nil {
		return "none (rules analyst)"
	}
	return l.Model()
}
