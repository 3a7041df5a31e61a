package functions

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/secrets"
	"github.com/zsmseven/backend/pkg/tickerdata"
)

// keyReadTimeout bounds the cold-start read of the Polygon key.
const keyReadTimeout = 15 * time.Second

// ProcessTicker builds the processTicker handler: configuration, the
// DynamoDB client (AWS_ENDPOINT_URL_DYNAMODB honoured), the Polygon key —
// POLYGON_API_KEY, else the stage's secret, read here so that a missing or
// unreadable key fails the cold start instead of every record — the paced
// Polygon client, logger and metrics on out; with TICKER_QUEUE_URL and
// TICKER_DLQ_URL, the SQS requeuer (AWS_ENDPOINT_URL_SQS honoured).
func ProcessTicker(ctx context.Context, lookup config.Lookup, out io.Writer) (func(context.Context, events.SQSEvent) (events.SQSEventResponse, error), error) {
	cfg, err := config.LoadProcessTicker(lookup)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	var sm secrets.SecretsManagerAPI
	if cfg.APIKeysSecretARN != "" {
		sm = secretsmanager.NewFromConfig(awsCfg)
	}
	keys := secrets.NewKeys(lookup, sm, cfg.APIKeysSecretARN)
	kctx, cancel := context.WithTimeout(ctx, keyReadTimeout)
	defer cancel()
	if _, err := keys.Get(kctx, secrets.PolygonAPIKey); err != nil {
		return nil, fmt.Errorf("read the Polygon API key at start-up: %w", err)
	}
	return NewProcessTicker(TickerDeps{
		Config:   cfg,
		Store:    tickerdata.NewStore(dynamodb.NewFromConfig(awsCfg), cfg.TickerDataTable),
		Requeuer: requeuer(awsCfg, cfg),
		Keys:     keys,
		Out:      out,
	})
}

// NewRequeuer returns processTicker's SQS requeuer when cfg names the ticker
// queue and its dead-letter queue (AWS_ENDPOINT_URL_SQS honoured), else nil:
// for callers that build the handler with NewProcessTicker.
func NewRequeuer(ctx context.Context, cfg config.ProcessTicker) (pipeline.Requeuer, error) {
	if cfg.TickerQueueURL == "" {
		return nil, nil
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return requeuer(awsCfg, cfg), nil
}

func requeuer(awsCfg aws.Config, cfg config.ProcessTicker) pipeline.Requeuer {
	if cfg.TickerQueueURL == "" {
		return nil // not a typed nil: the handler tests Requeuer != nil
	}
	return queue.NewRequeuer(sqs.NewFromConfig(awsCfg), cfg.TickerQueueURL, cfg.TickerDLQURL)
}

// TickerDeps are the adapters of the processTicker handler, so the CLI and
// tests can build it over their own clients.
type TickerDeps struct {
	Config config.ProcessTicker
	Store  pipeline.TickerStore
	// Requeuer, when set, re-queues (or dead-letters) a FIFO record that
	// failed transiently instead of handing it back (pipeline.ProcessTicker).
	Requeuer pipeline.Requeuer
	// Market, when set, replaces the Polygon client (the CLI's sandbox);
	// Source then names it in the stored rows.
	Market pipeline.MarketData
	Source string
	// Keys resolves the Polygon key for the Polygon client (cached).
	Keys interface {
		Get(ctx context.Context, name string) (string, error)
	}
	// Out receives JSON logs and EMF metrics.
	Out io.Writer
	// PolygonOptions, if set, adjusts the client's options (tests: clock,
	// retry, a full bucket).
	PolygonOptions func(*polygon.Options)
}

// NewProcessTicker returns the handler over deps. The Polygon client and the
// metrics recorder live as long as the execution environment; the recorder
// is flushed at the end of every invocation, and the client's token bucket is
// emptied at the start of every invocation (see polygon.Client.Drain).
func NewProcessTicker(d TickerDeps) (func(context.Context, events.SQSEvent) (events.SQSEventResponse, error), error) {
	cfg := d.Config
	logger := logging.New(d.Out, cfg.LogLevel).With("function", "processTicker", "stage", cfg.Stage)
	rec := metrics.New(d.Out, cfg.Stage)
	market, source := d.Market, d.Source
	if market == nil {
		opts := polygon.Options{
			BaseURL:        cfg.PolygonBaseURL,
			APIKey:         func(ctx context.Context) (string, error) { return d.Keys.Get(ctx, secrets.PolygonAPIKey) },
			CallsPerMinute: cfg.PolygonCallsPerMinute,
			Metrics:        rec,
			Logger:         logger,
		}
		if d.PolygonOptions != nil {
			d.PolygonOptions(&opts)
		}
		client, err := polygon.New(opts)
		if err != nil {
			return nil, err
		}
		market, source = client, "polygon"
	}
	// A paced client (polygon.Client, also when injected) starts each
	// invocation with an empty bucket.
	var drain func()
	if p, ok := market.(interface{ Drain() }); ok {
		drain = p.Drain
	}
	uc := &pipeline.ProcessTicker{
		Market: market, Store: d.Store, Source: source, Requeuer: d.Requeuer,
		HistoryDays: cfg.PolygonHistoryDays, RecordBudget: cfg.RecordBudget,
		Metrics: rec, Logger: logger,
	}
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		if drain != nil {
			drain()
		}
		return uc.Handle(ctx, ev)
	}, nil
}
