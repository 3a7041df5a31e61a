// Package processtickers wires the processTickers function: the shared
// portfolio tables (DynamoDB, read only) in, the ticker queue (SQS) out; for
// the catch-up run, the day's state (daily-bars) and the rows of the day
// (ticker-data), read only.
package processtickers

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/pkg/app"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/sqsqueue"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// Handler is the function's Lambda handler.
type Handler = func(context.Context, json.RawMessage) (pipeline.Summary, error)

// New builds the handler as the Lambda's main does: configuration from
// lookup (a problem fails here, in one line naming the variable) and the
// production adapters (FromEnv), then Build.
func New(ctx context.Context, lookup config.Lookup, out io.Writer) (Handler, error) {
	d, err := FromEnv(ctx, lookup, out)
	if err != nil {
		return nil, err
	}
	return Build(d), nil
}

var (
	_ pipeline.Publisher = (*sqsqueue.Publisher)(nil)
	_ pipeline.Nights    = (*bardb.Store)(nil)
	_ pipeline.RowIndex  = (*tickerdb.Store)(nil)
)

// Deps are the handler's configuration, adapters and parameters.
type Deps struct {
	Config    config.ProcessTickers
	Source    pipeline.PortfolioSource
	Publisher pipeline.Publisher
	// Nights and Rows serve the catch-up run.
	Nights pipeline.Nights
	Rows   pipeline.RowIndex
	// Out receives JSON logs and EMF metrics.
	Out io.Writer
	// Now is the clock that decides the trading day; nil is time.Now
	// (`zsm run --date` runs a past night).
	Now func() time.Time
}

// FromEnv reads the configuration and builds the production adapters: the
// shared-table reader, the SQS publisher, and the readers of the day's state
// and rows.
func FromEnv(ctx context.Context, lookup config.Lookup, out io.Writer) (Deps, error) {
	cfg, awsCfg, err := app.Load(ctx, lookup, config.LoadProcessTickers)
	if err != nil {
		return Deps{}, err
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	return Deps{
		Config:    cfg,
		Source:    Holdings(portfoliodb.NewReader(ddb, cfg.UserPortfoliosTable, cfg.PortfolioPositionsTable)),
		Publisher: sqsqueue.NewPublisher(sqs.NewFromConfig(awsCfg), cfg.TickerQueueURL, sqsqueue.PublisherOptions{Groups: cfg.TickerMessageGroups}),
		Nights:    bardb.NewStore(ddb, cfg.DailyBarsTable),
		Rows:      tickerdb.NewStore(ddb, cfg.TickerDataTable),
		Out:       out,
	}, nil
}

// Build returns the handler over d.
func Build(d Deps) Handler {
	logger := logging.New(d.Out, d.Config.LogLevel).With("function", "processTickers", "stage", d.Config.Stage)
	return func(ctx context.Context, ev json.RawMessage) (pipeline.Summary, error) {
		uc := &pipeline.ProcessTickers{Source: d.Source, Publisher: d.Publisher, Nights: d.Nights, Rows: d.Rows,
			Groups: d.Config.TickerMessageGroups, Metrics: metrics.New(d.Out, d.Config.Stage), Logger: logger, Now: d.Now}
		return uc.Handle(ctx, ev)
	}
}
