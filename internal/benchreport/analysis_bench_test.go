package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/secrets"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// seedNight writes nightPortfolios portfolios of nightPositions positions
// each (over nightTickers tickers, with a cost basis) and a fresh
// ticker-data row per ticker, in batches of 25.
func seedNight(b *testing.B, db *dynamodb.Client, stage string) {
	b.Helper()
	ctx := context.Background()
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v float64) types.AttributeValue { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }
	var reqs []types.WriteRequest
	flush := func(table string) {
		for len(reqs) > 0 {
			out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
			if err != nil {
				b.Fatal(err)
			}
			reqs = out.UnprocessedItems[table]
		}
	}
	add := func(table string, item map[string]types.AttributeValue) {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
		if len(reqs) == 25 {
			flush(table)
		}
	}
	pos := deploy.PortfolioPositions.Name(stage)
	// The holdings repeat every nightTickers portfolios, but no two
	// portfolios hold the same quantities: each has its own overview to pay
	// (identical inputs would share one, as they should).
	for i := range nightPortfolios {
		for j := range nightPositions {
			sym := ticker((i*7 + j*3) % nightTickers)
			qty := float64(1 + j + i)
			add(pos, map[string]types.AttributeValue{"portfolioId": s(fmt.Sprintf("p%04d", i)), "positionId": s(sym), "ticker": s(sym),
				"quantity": n(qty), "costBasis": n(90 * qty)})
		}
	}
	flush(pos)
	pf := deploy.UserPortfolios.Name(stage)
	for i := range nightPortfolios {
		add(pf, map[string]types.AttributeValue{"userId": s(fmt.Sprintf("u%04d", i)), "portfolioId": s(fmt.Sprintf("p%04d", i)), "name": s(fmt.Sprintf("P%04d", i))})
	}
	flush(pf)
	store := tickerdb.NewStore(db, deploy.TickerData.Name(stage))
	last := marketdata.LastTradingDay(time.Now())
	at, err := marketdata.CloseInstant(last)
	if err != nil {
		b.Fatal(err)
	}
	for i := range nightTickers {
		rsi, ma50, ma200, vol := 30+float64(i), 100.0, 95.0, 20+float64(i%30)
		if err := store.Put(ctx, tickerdb.Row{Ticker: ticker(i), Timestamp: at, Source: "polygon",
			Snapshot: indicators.Snapshot{AsOf: last, Price: 90 + float64(i), RSI: &rsi, MA50: &ma50, MA200: &ma200, Volatility20DPct: &vol, Bars: 300}}); err != nil {
			b.Fatal(err)
		}
	}
}

// night runs analyzePortfolio as deployed — the fan-out, then the analysis
// queue consumed nightConcurrency at a time, each invocation with the
// (scaled) deployed deadline — and counts what happened.
type analysisNight struct {
	wall                       time.Duration
	queued, invocations, peak  int
	calls, refused, xaiPeak    int
	analyzed, stored, dead     int
	skipped, reused, requeued  int
	promptTokens, outputTokens float64
}

func runNight(b *testing.B, fn *analyzeportfolio.Function, sq *localsqs.Server, queue string, srv *fakexai.Server, out *syncBuffer) analysisNight {
	b.Helper()
	ctx := context.Background()
	callsBefore := srv.Calls()
	start := time.Now()
	ictx, cancel := context.WithTimeout(ctx, scaled(deploy.AnalyzePortfolio.Timeout))
	fan, err := fn.Run(ictx, analyzer.Event{PortfolioName: analyzer.AllPortfolios})
	cancel()
	if err != nil {
		b.Fatalf("fan-out: %v", err)
	}
	var mu sync.Mutex
	var r analysisNight
	totals, err := sq.DrainConcurrent(ctx, queue, 1, nightConcurrency, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		ictx, cancel := context.WithTimeout(ctx, scaled(deploy.AnalyzePortfolio.Timeout))
		defer cancel()
		resp, err := fn.Consume(ictx, ev)
		mu.Lock()
		r.invocations++
		mu.Unlock()
		return resp, err
	})
	if err != nil {
		b.Fatal(err)
	}
	r.wall = time.Since(start)
	r.queued, r.peak, r.requeued, r.dead = len(fan.Queued), totals.Peak, totals.Requeued, totals.DeadLettered
	r.calls, r.refused, r.xaiPeak = srv.Calls()-callsBefore, srv.Refused(), srv.Peak()
	em := out.metrics()
	r.analyzed, r.stored, r.skipped = int(em[deploy.AnalysesAnalyzed.Name]), int(em[deploy.AnalysesStored.Name]), int(em[deploy.AnalysisSkipped.Name])
	r.reused = r.analyzed - r.stored
	r.promptTokens, r.outputTokens = em[deploy.LLMPromptTokens.Name], em[deploy.LLMCompletionTokens.Name]+em[deploy.LLMReasoningTokens.Name]
	return r
}

// BenchmarkAnalysisNight analyzes 1,000 portfolios in one night, as
// deployed, against the local xAI server answering in 30 s (scaled): the
// fan-out plans the night's tickers into batches queued first, then each
// portfolio's overview; then it runs the same night again on the same
// data, which must pay nothing.
func BenchmarkAnalysisNight(b *testing.B) {
	for b.Loop() {
		env := dynalitetest.New(b)
		seedNight(b, env.Client, env.Stage)
		sq, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer sq.Close()
		queueURL := sq.CreateQueue(deploy.AnalysisQueueName(env.Stage))
		srv := fakexai.New(b, fakexai.Slow(fakexai.Generate(&fakexai.Generator{}), scaled(nightAnswer)))
		srv.RequireKey = benchKey
		client := sqs.New(sqs.Options{Region: localsqs.Region, BaseEndpoint: aws.String(sq.Endpoint()),
			Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
		out := &syncBuffer{}
		keys := map[string]string{deploy.SecretKeyXAI: benchKey}
		cfg := config.AnalyzePortfolio{Stage: env.Stage, LogLevel: slog.LevelWarn,
			UserPortfoliosTable: deploy.UserPortfolios.Name(env.Stage), PortfolioPositionsTable: deploy.PortfolioPositions.Name(env.Stage),
			TickerDataTable: deploy.TickerData.Name(env.Stage), PortfolioAnalysesTable: deploy.PortfolioAnalyses.Name(env.Stage),
			ReservationsTable: deploy.AnalysisReservations.Name(env.Stage), AnalysisQueueURL: queueURL, DefaultPortfolio: deploy.DefaultPortfolio,
			Manager: deploy.DefaultAnalysisManager,
			Model: config.Model{Provider: deploy.XAI, URL: srv.URL, Name: deploy.DefaultXAIModel, MaxCompletionTokens: deploy.DefaultXAIMaxCompletionTokens,
				ReasoningEffort: deploy.DefaultXAIReasoningEffort, AttemptTimeout: scaled(deploy.DefaultXAIAttemptTimeout)},
			Reserve: scaled(deploy.DefaultXAIReserve)}
		fn := analyzeportfolio.Build(analyzeportfolio.Deps{
			Config:     cfg,
			Ports:      analyzeportfolio.AWS(env.Client, client, cfg),
			Keys:       secrets.NewKeys(func(k string) (string, bool) { v, ok := keys[k]; return v, ok }, nil, ""),
			Out:        out,
			ModelRetry: &retry.Policy{Attempts: 3, Base: scaled(time.Second), Cap: scaled(20 * time.Second), MaxRetryAfter: scaled(30 * time.Second)},
			WaitPoll:   scaled(2 * time.Second), MinWork: scaled(60 * time.Second), PlannedLease: scaled(analyzer.DefaultPlannedLease),
		})

		first := runNight(b, fn, sq, deploy.AnalysisQueueName(env.Stage), srv, out)
		out.reset()
		second := runNight(b, fn, sq, deploy.AnalysisQueueName(env.Stage), srv, out)

		items := countItems(b, env.Client, deploy.PortfolioAnalyses.Name(env.Stage))
		notAnalyzed := nightPortfolios - first.analyzed
		b.ReportMetric(first.wall.Seconds(), "wall-s")
		b.ReportMetric(first.wall.Seconds()*nightScale/60, "prod-wall-min")
		b.ReportMetric(float64(nightPortfolios)*nightAnswer.Minutes()/nightConcurrency, "ideal-min")
		b.ReportMetric(float64(first.queued), "queued")
		b.ReportMetric(float64(first.invocations), "invocations")
		b.ReportMetric(float64(first.peak), "peak-invocations")
		b.ReportMetric(float64(first.xaiPeak), "peak-xai-requests")
		b.ReportMetric(float64(first.calls), "calls")
		b.ReportMetric(float64(first.refused), "refused")
		b.ReportMetric(float64(first.analyzed), "analyzed")
		b.ReportMetric(float64(notAnalyzed+first.skipped+first.dead), "skipped")
		b.ReportMetric(float64(first.requeued), "handed-back")
		b.ReportMetric(float64(items), "items")
		b.ReportMetric(first.promptTokens/nightPortfolios, "prompt-tokens/portfolio")
		b.ReportMetric(first.outputTokens/nightPortfolios, "output-tokens/portfolio")
		b.ReportMetric(second.wall.Seconds(), "second-wall-s")
		b.ReportMetric(float64(second.calls), "second-calls")
		b.ReportMetric(float64(second.reused), "second-reused")
		batches := (nightTickers + analysis.TickerBatchSize - 1) / analysis.TickerBatchSize
		b.ReportMetric(float64(batches), "ticker-batches")
		if first.calls != nightPortfolios+batches || first.analyzed != nightPortfolios || second.calls != 0 || items != nightPortfolios {
			b.Errorf("night: %+v; second: %+v; %d items", first, second, items)
		}
	}
}

func countItems(b *testing.B, db *dynamodb.Client, table string) int {
	b.Helper()
	n := 0
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), Select: types.SelectCount})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n += int(out.Count)
	}
	return n
}

// syncBuffer collects the functions' output (logs and EMF lines) from
// concurrent invocations; metrics sums its EMF documents.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
}

func (s *syncBuffer) metrics() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]float64{}
	for _, line := range strings.Split(s.buf.String(), "\n") {
		if !strings.Contains(line, `"_aws"`) {
			continue
		}
		var doc map[string]any
		if json.Unmarshal([]byte(line), &doc) != nil {
			continue
		}
		for k, v := range doc {
			if f, ok := v.(float64); ok {
				out[k] += f
			}
		}
	}
	return out
}
