package reliability

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// seedPortfolio writes a portfolio of the given symbols (quantity 1 each)
// in the shared tables' documented shape.
func seedPortfolio(t *testing.T, db *dynamodb.Client, stage, name string, symbols []string) {
	t.Helper()
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	put := func(table string, item map[string]types.AttributeValue) {
		if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	id := "id-" + name
	for _, sym := range symbols {
		put(deploy.PortfolioPositions.Name(stage), map[string]types.AttributeValue{"portfolioId": s(id), "positionId": s(sym), "ticker": s(sym),
			"quantity": &types.AttributeValueMemberN{Value: "1"}})
	}
	put(deploy.UserPortfolios.Name(stage), map[string]types.AttributeValue{"userId": s("u-" + name), "portfolioId": s(id), "name": s(name)})
}

// seedRows writes a fresh ticker-data row of the last trading day for each
// symbol.
func seedRows(t *testing.T, db *dynamodb.Client, stage string, symbols []string) {
	t.Helper()
	store := tickerdb.NewStore(db, deploy.TickerData.Name(stage))
	last := marketdata.LastTradingDay(time.Now())
	ts, err := marketdata.CloseInstant(last)
	if err != nil {
		t.Fatal(err)
	}
	rsi, ma := 48.0, 100.0
	for i, sym := range symbols {
		r := tickerdb.Row{Ticker: sym, Timestamp: ts, Source: "polygon",
			Snapshot: indicators.Snapshot{AsOf: last, Price: 95 + float64(i%10), RSI: &rsi, MA50: &ma, Bars: 250}}
		if err := store.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func synthSymbols(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// TestFaultsAnalysisRuns covers what happens around the model call: runs
// that overlap, a message delivered twice, a portfolio too large for one
// answer, and a fan-out in which one portfolio fails on every receive.
func TestFaultsAnalysisRuns(t *testing.T) {
	t.Run("overlapping_runs", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("OV", 5)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Overlap", syms)
		srv := fakexai.New(t, fakexai.Slow(fakexai.Generate(&fakexai.Generator{}), 400*time.Millisecond))
		srv.RequireKey = xaiKey
		const runs = 3
		var wg sync.WaitGroup
		statuses := make([]string, runs)
		for i := range runs {
			// Separate functions: separate execution environments.
			fn := w.analyzer(srv, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				res, err := fn.Run(ctx, analyzer.Event{PortfolioName: "Overlap"})
				if err != nil {
					t.Errorf("run %d: %v", i, err)
					return
				}
				statuses[i] = res.Portfolios[0].Status
			}()
		}
		wg.Wait()
		stored := countAnalyses(t, w.db, w.stage, "Overlap")
		reused := 0
		for _, s := range statuses {
			if s == analyzer.OutcomeReused {
				reused++
			}
		}
		if srv.Calls() != 1 || stored != 1 || reused != runs-1 {
			t.Fatalf("%d xAI calls, %d stored, statuses %v: want 1 call, 1 analysis, the others reused", srv.Calls(), stored, statuses)
		}
		addRow(row{Analysis: true, Scenario: "overlapping runs", Faults: "3 runs of the same portfolio and data at once (a retried schedule, a manual run)",
			In: runs, Written: stored, Duplicated: max(stored-1, 0), Red: srv.Calls() - 1,
			Outcome: outcome(t, "one reserves the key (conditional put), pays and stores; the two others wait for it and reuse it: 1 paid call")})
	})

	t.Run("redelivered_message", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("RD", 4)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Redelivered", syms)
		srv := fakexai.New(t, fakexai.Slow(fakexai.Generate(&fakexai.Generator{}), 300*time.Millisecond))
		srv.RequireKey = xaiKey
		body, err := analysisqueue.New("Redelivered", "run-r", true, time.Now()).Encode()
		if err != nil {
			t.Fatal(err)
		}
		// The same forced message twice at once (at-least-once delivery),
		// then once more after both finished.
		deliver := func(fn *analyzeportfolio.Function, receipt string, receives int) events.SQSEventResponse {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := fn.Consume(ctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-1", ReceiptHandle: receipt, Body: body,
				EventSource: "aws:sqs", Attributes: map[string]string{"ApproximateReceiveCount": strconv.Itoa(receives)}}}})
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		var wg sync.WaitGroup
		handedBack := 0
		var mu sync.Mutex
		for i := range 2 {
			fn := w.analyzer(srv, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp := deliver(fn, fmt.Sprint("r", i), i+1)
				mu.Lock()
				handedBack += len(resp.BatchItemFailures)
				mu.Unlock()
			}()
		}
		wg.Wait()
		handedBack += len(deliver(w.analyzer(srv, nil), "r3", 3).BatchItemFailures)
		stored := countAnalyses(t, w.db, w.stage, "Redelivered")
		if srv.Calls() != 1 || stored != 1 || handedBack != 0 {
			t.Fatalf("%d calls, %d stored, %d handed back: want 1 call, 1 analysis, every delivery acknowledged", srv.Calls(), stored, handedBack)
		}
		addRow(row{Analysis: true, Scenario: "redelivered message", Faults: "one forced queue message delivered twice at once, then a third time",
			In: 1, Written: stored, Duplicated: max(stored-1, 0), Red: 2,
			Outcome: outcome(t, "the forced reservation is keyed by the message's run id: one paid call, the redeliveries reuse it and are acknowledged")})
	})

	t.Run("500_positions", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("BG", analysis.MaxPositions)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Large", syms)
		srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
		srv.RequireKey = xaiKey
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := w.analyzer(srv, nil).Run(ctx, analyzer.Event{PortfolioName: "Large"})
		if err != nil {
			t.Fatal(err)
		}
		items, err := analysisdb.New(w.db, deploy.PortfolioAnalyses.Name(w.stage)).Recent(ctx, "Large", 1)
		if err != nil || len(items) != 1 {
			t.Fatalf("read back: %v, %d items", err, len(items))
		}
		it := items[0]
		seen := map[string]int{}
		for _, ts := range it.Result.Tickers {
			seen[ts.Ticker]++
		}
		if it.Status != analysisdb.StatusOK || len(it.Result.Tickers) != analysis.MaxPositions || len(seen) != analysis.MaxPositions ||
			srv.Calls() != 11 || res.Portfolios[0].Calls != 11 {
			t.Fatalf("status %s (%s), %d entries for %d symbols, %d calls: want ok, one entry per position, 10 batches + 1",
				it.Status, it.Reason, len(it.Result.Tickers), len(seen), srv.Calls())
		}
		for _, r := range srv.Requests() {
			if r.Decoded.MaxCompletionTokens > 300+250*50 {
				t.Errorf("a call asked for %d completion tokens", r.Decoded.MaxCompletionTokens)
			}
		}
		addRow(row{Analysis: true, Scenario: "500-position portfolio", Faults: "a portfolio of 500 positions (the cap)", In: 1, Written: 1, Red: srv.Calls() - 1,
			Outcome: outcome(t, "10 batch calls of 50 positions (each within a 12,800-token cap) and one portfolio call; stored `ok` with exactly one entry per position")})
	})

	t.Run("fan_out_with_a_failing_portfolio", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		queueName := deploy.AnalysisQueueName(w.stage)
		queueURL := w.sqs.CreateQueue(queueName)
		syms := synthSymbols("FO", 6)
		seedRows(t, w.db, w.stage, syms)
		names := []string{"Alpha", "Beta", "Gamma", "Delta"}
		for i, n := range names {
			seedPortfolio(t, w.db, w.stage, n, syms[i:i+2])
		}
		// Broken's only ticker row cannot be read (no price): its analysis
		// fails on every receive.
		if _, err := w.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(deploy.TickerData.Name(w.stage)),
			Item: map[string]types.AttributeValue{"ticker": &types.AttributeValueMemberS{Value: "BRKN"}, "timestamp": &types.AttributeValueMemberS{Value: "2026-11-27T21:00:00Z"}}}); err != nil {
			t.Fatal(err)
		}
		seedPortfolio(t, w.db, w.stage, "Broken", []string{"BRKN"})
		srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
		srv.RequireKey = xaiKey
		client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(w.sqs.Endpoint()),
			Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
		fn := w.analyzer(srv, func(d *analyzeportfolio.Deps) { d.Queue = analysisqueue.NewSender(client, queueURL) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		fan, err := fn.Run(ctx, analyzer.Event{PortfolioName: "*"})
		if err != nil {
			t.Fatal(err)
		}
		totals, err := w.sqs.DrainConcurrent(ctx, queueName, 1, deploy.DefaultAnalysisConcurrency, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			return fn.Consume(ctx, ev)
		})
		if err != nil {
			t.Fatal(err)
		}
		written := 0
		for _, n := range names {
			written += countAnalyses(t, w.db, w.stage, n)
		}
		dead := w.sqs.DeadLetters(queueName)
		failed := emfTotals(w.logs.String())[deploy.AnalysisFailed.Name]
		in := len(fan.Queued)
		lost := in - written - len(dead)
		if in != 5 || written != 4 || len(dead) != 1 || lost != 0 || totals.Requeued != deploy.AnalysisMaxReceiveCount-1 ||
			failed != float64(deploy.AnalysisMaxReceiveCount) || countAnalyses(t, w.db, w.stage, "Broken") != 0 {
			t.Fatalf("queued %d, written %d, dead %v, requeued %d, AnalysisFailed %v: want 5, 4, Broken after 5 receives, 4, 5",
				in, written, dead, totals.Requeued, failed)
		}
		m, err := analysisqueue.Decode([]byte(dead[0]))
		if err != nil || m.Portfolio != "Broken" {
			t.Fatalf("dead-lettered %q (%v), want Broken's message", dead[0], err)
		}
		addRow(row{Analysis: true, Scenario: "fan-out with a failing portfolio", Faults: "`*` over 5 portfolios, one of whose ticker rows cannot be read",
			In: in, Written: written, HandedBack: len(dead), Lost: lost, Red: totals.Requeued,
			Outcome: outcome(t, "one message per portfolio; 4 analyzed; the failing one handed back on each of 5 receives (AnalysisFailed 5, alarmed) and dead-lettered, never skipped")})
	})
}
