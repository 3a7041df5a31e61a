// Package processticker wires the processTicker function: the ticker queue's
// batches (SQS) in; the market data (Polygon, paced: grouped daily, splits,
// a ticker's own bars), the API-key secret (Secrets Manager, re-read when
// Polygon refuses the key), the stored daily history (daily-bars: bars, the
// ledger, what it covers) and the ticker-data table (DynamoDB) it talks to;
// the ticker queue (SQS) for the fill a day message queues and the records it
// re-queues, its dead-letter queue, and its visibility for the records it
// hands back.
package processticker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/pkg/app"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/pacing"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/secrets"
	"github.com/zsmseven/backend/pkg/sqsqueue"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

var (
	_ pipeline.Requeuer   = (*sqsqueue.Requeuer)(nil)
	_ pipeline.Visibility = (*sqsqueue.Visibility)(nil)
	_ pipeline.Publisher  = (*sqsqueue.Publisher)(nil)
	_ pipeline.History    = (*bardb.Store)(nil)
)

// Handler is the function's Lambda handler.
type Handler = func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// keyReadTimeout bounds the cold-start read of the Polygon key.
const keyReadTimeout = 15 * time.Second

// Source is the market-data source recorded in the rows of a deployed stage.
const Source = "polygon"

// New builds the handler as the Lambda's main does: FromEnv, then Build.
func New(ctx context.Context, lookup config.Lookup, out io.Writer) (Handler, error) {
	d, err := FromEnv(ctx, lookup, out)
	if err != nil {
		return nil, err
	}
	return Build(d)
}

// Deps are the handler's configuration, adapters and parameters.
type Deps struct {
	Config config.ProcessTicker
	// Rows is the ticker-data table (Rows over a tickerdb.Store), History
	// the daily-bars table (bardb.Store).
	Rows    pipeline.Rows
	History pipeline.History
	// Publisher, when set, queues the fill a day message plans on the
	// ticker queue (pipeline.ProcessTicker).
	Publisher pipeline.Publisher
	// Requeuer, when set, re-queues (or dead-letters) a FIFO record that
	// failed transiently instead of handing it back (pipeline.ProcessTicker).
	Requeuer pipeline.Requeuer
	// Keys resolves the Polygon key (deploy.SecretKeyPolygon), cached; when
	// it also has Refresh(ctx) error (secrets.Keys), a refused key is read
	// again once before the run stops.
	Keys app.Keys
	// Visibility, when set, releases the records handed back unstarted.
	Visibility pipeline.Visibility
	// Out receives JSON logs and EMF metrics.
	Out io.Writer
	// Source names the market data in the stored rows; "" is Source. The
	// local stack's sample data says "sandbox".
	Source string
	// Retry is the Polygon client's retry policy; nil is polygon.DefaultRetry.
	Retry *retry.Policy
	// Observer, when set, hears what became of each record (the CLI's progress).
	Observer pipeline.Observer
	// Now is the use case's clock of deadlines; nil is time.Now. MarketNow
	// is its market's clock (fetch times, a v1 message's day); nil is Now.
	// `zsm run --date` sets MarketNow to the night's clock.
	Now, MarketNow func() time.Time
}

// FromEnv reads the configuration and builds the production adapters: the
// key resolver (deploy.EnvPolygonAPIKey, else the stage's secret, read here so that
// a missing or unreadable key fails the cold start instead of every record),
// the ticker-data and daily-bars stores and, with the ticker queue and its
// dead-letter queue configured, the SQS publisher of the fill, the requeuer
// and the queue's visibility. The AWS clients honour AWS_ENDPOINT_URL_* for
// local servers.
func FromEnv(ctx context.Context, lookup config.Lookup, out io.Writer) (Deps, error) {
	cfg, awsCfg, err := app.Load(ctx, lookup, config.LoadProcessTicker)
	if err != nil {
		return Deps{}, err
	}
	var sm secrets.SecretsManagerAPI
	if cfg.APIKeysSecretARN != "" {
		sm = secretsmanager.NewFromConfig(awsCfg)
	}
	keys := secrets.NewKeys(lookup, sm, cfg.APIKeysSecretARN)
	kctx, cancel := context.WithTimeout(ctx, keyReadTimeout)
	defer cancel()
	if _, err := keys.Get(kctx, deploy.SecretKeyPolygon); err != nil {
		return Deps{}, fmt.Errorf("read the Polygon API key at start-up: %w", err)
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	d := Deps{
		Config:  cfg,
		Rows:    Rows(tickerdb.NewStore(ddb, cfg.TickerDataTable)),
		History: bardb.NewStore(ddb, cfg.DailyBarsTable),
		Keys:    keys,
		Out:     out,
	}
	if cfg.TickerQueueURL != "" {
		client := sqs.NewFromConfig(awsCfg)
		d.Publisher = sqsqueue.NewPublisher(client, cfg.TickerQueueURL, sqsqueue.PublisherOptions{Groups: cfg.TickerMessageGroups})
		d.Requeuer = sqsqueue.NewRequeuer(client, cfg.TickerQueueURL, cfg.TickerDLQURL)
		d.Visibility = sqsqueue.NewVisibility(client, cfg.TickerQueueURL)
	}
	return d, nil
}

// Build returns the handler over d. The Polygon client, its pacer and the
// metrics recorder live as long as the execution environment; the recorder
// is flushed at the end of every invocation, and the pacer is drained at the
// start of every invocation (see pacing.Limiter.Drain).
func Build(d Deps) (Handler, error) {
	cfg := d.Config
	logger := logging.New(d.Out, cfg.LogLevel).With("function", "processTicker", "stage", cfg.Stage)
	rec := metrics.New(d.Out, cfg.Stage)
	pacer := pacing.New(cfg.PolygonCallsPerMinute, pacing.Options{Logger: logger})
	opts := polygon.Options{
		BaseURL: cfg.PolygonBaseURL,
		APIKey: func(ctx context.Context) (string, error) {
			key, err := d.Keys.Get(ctx, deploy.SecretKeyPolygon)
			if errors.Is(err, secrets.ErrNotSet) {
				return "", nil // the client refuses an empty key: ErrUnauthorized
			}
			return key, err
		},
		Pacer: pacer,
		// Every market-data call and 429 is counted on the wire, whatever
		// the adapter: the throttling alarm watches these.
		HTTPClient: meteredClient(rec),
		Logger:     logger,
	}
	if d.Retry != nil {
		opts.Retry = *d.Retry
	}
	client, err := polygon.New(opts)
	if err != nil {
		return nil, err
	}
	source := d.Source
	if source == "" {
		source = Source
	}
	interval := pacing.Interval(cfg.PolygonCallsPerMinute)
	uc := &pipeline.ProcessTicker{
		Market: client, Rows: d.Rows, History: d.History, Publisher: d.Publisher, Source: source,
		Requeuer: d.Requeuer, Visibility: d.Visibility, RecordBudget: cfg.RecordBudget,
		// A day message waits for three paced calls (its day, the session
		// before it again, the splits) and stores two sessions of the whole
		// market; a fill message one call and one session. Ten fill
		// messages fit one invocation: 10 × 12.24 s on the free plan.
		DayBudget: 3*interval + time.Minute, FillBudget: interval + 30*time.Second,
		Metrics: rec, Logger: logger, Observer: d.Observer, Now: d.Now, MarketNow: d.MarketNow,
	}
	if r, ok := d.Keys.(interface{ Refresh(context.Context) error }); ok {
		uc.RefreshKey = r.Refresh
	}
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		pacer.Drain()
		return uc.Handle(ctx, ev)
	}, nil
}

// meteredClient is the market-data adapter's HTTP client, counted by the
// metrics decorator: calls and 429s of the market-data provider.
func meteredClient(rec *metrics.Recorder) *http.Client {
	hc := polygon.NewHTTPClient()
	hc.Transport = rec.Transport(hc.Transport, deploy.MarketDataCalls, deploy.MarketDataThrottled)
	return hc
}
