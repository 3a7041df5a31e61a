package functions

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/portfolios"
	"github.com/zsmseven/backend/pkg/queue"
)

// ProcessTickers builds the processTickers handler: configuration (a problem
// fails here, in one line naming the variable), the DynamoDB and SQS clients
// (which honour AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_SQS for local
// endpoints), logger and metrics on out.
func ProcessTickers(ctx context.Context, lookup config.Lookup, out io.Writer) (func(context.Context, json.RawMessage) (pipeline.Summary, error), error) {
	cfg, err := config.LoadProcessTickers(lookup)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return NewProcessTickers(TickersDeps{
		Config:    cfg,
		Source:    portfolios.NewReader(dynamodb.NewFromConfig(awsCfg), cfg.UserPortfoliosTable, cfg.PortfolioPositionsTable),
		Publisher: queue.NewPublisher(sqs.NewFromConfig(awsCfg), cfg.TickerQueueURL, queue.PublisherOptions{Groups: cfg.TickerMessageGroups}),
		Out:       out,
	}), nil
}

// TickersDeps are the adapters of the processTickers handler, so the CLI and
// tests can build it over their own clients.
type TickersDeps struct {
	Config    config.ProcessTickers
	Source    pipeline.PortfolioSource
	Publisher pipeline.Publisher
	// Out receives JSON logs and EMF metrics.
	Out io.Writer
}

// NewProcessTickers returns the handler over deps.
func NewProcessTickers(d TickersDeps) func(context.Context, json.RawMessage) (pipeline.Summary, error) {
	logger := logging.New(d.Out, d.Config.LogLevel).With("function", "processTickers", "stage", d.Config.Stage)
	return func(ctx context.Context, ev json.RawMessage) (pipeline.Summary, error) {
		uc := &pipeline.ProcessTickers{Source: d.Source, Publisher: d.Publisher, Metrics: metrics.New(d.Out, d.Config.Stage), Logger: logger}
		return uc.Handle(ctx, ev)
	}
}
