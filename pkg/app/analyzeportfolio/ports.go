package analyzeportfolio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/reservationdb"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/sqsqueue"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// Ports are the use case's repositories and queue: the analyzer's ports,
// as the production adapters (or a test's) implement them.
type Ports struct {
	Portfolios analyzer.Portfolios
	MarketData analyzer.MarketData
	Analyses   analyzer.Analyses
	Ledger     analyzer.Ledger
	// Queue is the analysis queue the fan-out sends to.
	Queue analyzer.Queue
}

// AWS are the production ports over DynamoDB (the shared tables, the
// ticker-data table, portfolio-analyses and the ledger, as cfg names them)
// and the analysis queue (SQS).
func AWS(db *dynamodb.Client, sq sqsqueue.BatchSender, cfg config.AnalyzePortfolio) Ports {
	return Ports{
		Portfolios: SharedTables(portfoliodb.NewReader(db, cfg.UserPortfoliosTable, cfg.PortfolioPositionsTable)),
		MarketData: TickerRows(tickerdb.NewStore(db, cfg.TickerDataTable)),
		Analyses:   analysisdb.New(db, cfg.PortfolioAnalysesTable),
		Ledger:     reservationdb.New(db, cfg.ReservationsTable),
		Queue:      NewQueue(sq, cfg.AnalysisQueueURL),
	}
}

var (
	_ analyzer.Analyses = (*analysisdb.Repository)(nil)
	_ analyzer.Ledger   = (*reservationdb.Store)(nil)
)

// SharedTables is the analyzer's view of portfolio-api's tables: the
// reader's types in the analysis's words.
func SharedTables(r *portfoliodb.Reader) analyzer.Portfolios { return sharedTables{r} }

type sharedTables struct{ r *portfoliodb.Reader }

func (t sharedTables) Names(ctx context.Context) ([]string, error) {
	all, err := t.r.List(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(all))
	for i, p := range all {
		names[i] = p.Name
	}
	return names, nil
}

func (t sharedTables) Holdings(ctx context.Context, name string) ([]analyzer.Holding, []analysis.Excluded, error) {
	_, positions, invalid, err := t.r.Holdings(ctx, name)
	if errors.Is(err, portfoliodb.ErrUnknownPortfolio) {
		return nil, nil, unknownPortfolio{err}
	}
	if err != nil {
		return nil, nil, err
	}
	hs := make([]analyzer.Holding, len(positions))
	for i, p := range positions {
		hs[i] = analyzer.Holding{Symbol: p.Symbol, Quantity: p.Quantity, CostBasis: p.CostBasis}
	}
	ex := make([]analysis.Excluded, len(invalid))
	for i, iv := range invalid {
		ex[i] = analysis.Excluded{Value: iv.Value, Reason: fmt.Sprintf("%s %s: %s", iv.Table, iv.Key, iv.Reason)}
	}
	return hs, ex, nil
}

// unknownPortfolio is the reader's error for a name no portfolio has, as
// the analyzer knows it (analyzer.ErrUnknownPortfolio): its text, naming
// the portfolio, is the reader's.
type unknownPortfolio struct{ err error }

func (u unknownPortfolio) Error() string        { return u.err.Error() }
func (u unknownPortfolio) Unwrap() error        { return u.err }
func (u unknownPortfolio) Is(target error) bool { return target == analyzer.ErrUnknownPortfolio }

func (t sharedTables) Symbols(ctx context.Context) ([]string, error) {
	res, err := t.r.ScanSymbols(ctx)
	if err != nil {
		return nil, err
	}
	return res.Symbols, nil
}

// TickerRows is the analyzer's view of ticker-data: a symbol's newest
// row's snapshot.
func TickerRows(s *tickerdb.Store) analyzer.MarketData { return tickerRows{s} }

type tickerRows struct{ s *tickerdb.Store }

func (t tickerRows) Latest(ctx context.Context, symbol string) (indicators.Snapshot, bool, error) {
	r, ok, err := t.s.Latest(ctx, symbol)
	return r.Snapshot, ok, err
}

// sendRetry re-sends entries SQS failed through no fault of the sender up
// to 4 times in all, with full jitter between 100 ms and 2 s.
var sendRetry = retry.Policy{Attempts: 4, Base: 100 * time.Millisecond, Cap: 2 * time.Second}

// NewQueue is the analysis queue at queueURL (a standard queue): messages
// sent in order, in batches of 10 (SendMessageBatch), the entries SQS
// failed through no fault of the sender re-sent within the context's
// deadline.
func NewQueue(client sqsqueue.BatchSender, queueURL string) analyzer.Queue {
	return sqsQueue{client: client, url: queueURL}
}

type sqsQueue struct {
	client sqsqueue.BatchSender
	url    string
}

// maxBatch is the most entries SQS accepts in one SendMessageBatch call.
const maxBatch = 10

func (q sqsQueue) Send(ctx context.Context, msgs []analysisqueue.Message) (int, []analyzer.SendFailure, error) {
	sent := 0
	var failed []analyzer.SendFailure
	for start := 0; start < len(msgs); start += maxBatch {
		batch := msgs[start:min(start+maxBatch, len(msgs))]
		entries := make([]types.SendMessageBatchRequestEntry, len(batch))
		for i, m := range batch {
			body, err := m.Encode()
			if err != nil {
				return sent, failed, err
			}
			// A standard queue: no group, no de-duplication id.
			entries[i] = types.SendMessageBatchRequestEntry{MessageBody: aws.String(body)}
		}
		br, err := sqsqueue.SendBatch(ctx, q.client, q.url, entries, sendRetry)
		sent += br.Accepted
		for _, f := range br.Failed {
			failed = append(failed, analyzer.SendFailure{Message: batch[f.Index], Code: f.Code, Reason: f.Message})
		}
		if err != nil {
			for _, m := range msgs[start+len(batch):] {
				failed = append(failed, analyzer.SendFailure{Message: m, Code: "Unsent", Reason: "batch not sent"})
			}
			return sent, failed, err
		}
	}
	return sent, failed, nil
}
