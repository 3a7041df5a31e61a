// Package e2e tests the deployable artifacts end to end: the three Lambda
// bootstraps, built as for AWS (linux, static, -tags lambda.norpc,
// -trimpath) but for the host's architecture, each run under the AWS Lambda
// Runtime Interface Emulator built from the version pinned in go.mod, against
// dynalite (DynamoDB), localsqs (SQS JSON protocol) and local Polygon and xAI
// servers. It asserts the handlers' response shapes, the batch response of a
// batch with a poison message and a transiently failing ticker, and the
// DynamoDB contents, and logs each function's Init Duration and memory.
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/internal/devstack/rie"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pipeline"
	tickerqueue "github.com/zsmseven/backend/pkg/queue"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

const (
	module     = "github.com/zsmseven/backend"
	polygonKey = "e2e-polygon-key"
	xaiKey     = "e2e-xai-key"
	// flaky answers 503 while failing is set: a transient Polygon outage.
	flaky = "META"
)

// The Lambda functions: directory under lambdas/ → name.
var functionDirs = []string{"processtickers", "processticker", "analyzeportfolio"}

// artifacts are the built emulator and bootstraps.
type artifacts struct {
	emulator  string
	bootstrap map[string]string
}

// build builds the emulator and the three bootstraps into a temporary
// directory (the Go build cache makes this quick after the first time).
func build(t *testing.T) artifacts {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	a := artifacts{bootstrap: map[string]string{}}
	var err error
	if a.emulator, err = rie.BuildEmulator(ctx, dir); err != nil {
		t.Fatal(err)
	}
	for _, fn := range functionDirs {
		if a.bootstrap[fn], err = rie.BuildBootstrap(ctx, module+"/lambdas/"+fn, filepath.Join(dir, fn, "bootstrap")); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// harness runs the functions of one test.
type harness struct {
	t     *testing.T
	art   artifacts
	db    *dynalitetest.Env
	sqs   *localsqs.Server
	queue string
	base  []string
	fns   map[string]*rie.Function
	extra map[string][]string // each function's own variables
}

func (h *harness) start(fn string, extra ...string) *rie.Function {
	h.t.Helper()
	f, err := rie.Start(context.Background(), rie.Options{
		Emulator: h.art.emulator, Bootstrap: h.art.bootstrap[fn], MemoryMB: 256, TimeoutSeconds: 180,
		Env: append(slices.Clone(h.base), extra...),
	})
	if err != nil {
		h.t.Fatalf("%s cannot start under the emulator: %v", fn, err)
	}
	h.t.Cleanup(f.Stop)
	h.fns[fn] = f
	h.extra[fn] = extra
	return f
}

// invoke posts the event and decodes the response into out, failing the test
// on a function error (a bootstrap that cannot initialise answers one too).
func (h *harness) invoke(fn string, event any, out any) {
	h.t.Helper()
	payload, err := json.Marshal(event)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	resp, err := h.fns[fn].Invoke(ctx, payload)
	if err != nil {
		h.t.Fatalf("%s: %v\noutput:\n%s", fn, err, h.fns[fn].Output())
	}
	dec := json.NewDecoder(strings.NewReader(string(resp)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		h.t.Fatalf("%s: response %s does not have the expected shape: %v", fn, resp, err)
	}
}

func TestBootstrapsUnderEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bootstraps and the emulator")
	}
	art := build(t)
	ctx := context.Background()
	db := dynalitetest.New(t)
	stage := db.Stage

	// The shared tables: the sample portfolio and one position whose symbol
	// the validator rejects.
	if _, err := devstack.SeedSamplePortfolio(ctx, db.Client, stage); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(deploy.PortfolioPositions.Name(stage)),
		Item: map[string]types.AttributeValue{
			"portfolioId": &types.AttributeValueMemberS{Value: "other"}, "positionId": &types.AttributeValueMemberS{Value: "x"},
			"ticker": &types.AttributeValueMemberS{Value: "NOT A TICKER;"},
		}}); err != nil {
		t.Fatal(err)
	}

	sq, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sq.Close() })
	queue := "ticker-processing-queue-" + stage + ".fifo"
	queueURL := sq.CreateQueue(queue)
	dlq := "ticker-processing-dlq-" + stage + ".fifo"
	dlqURL := sq.CreateQueue(dlq)
	analysisQueue := deploy.AnalysisQueueName(stage)
	analysisQueueURL := sq.CreateQueue(analysisQueue)

	// Polygon: the market of synthetic bars, in whose grouped answers the
	// flaky ticker is missing (a security the grouped endpoint leaves out):
	// it costs its own call, answered 503 while failing is set.
	var failing atomic.Bool
	var grouped []string
	for _, tk := range devstack.SampleSymbols {
		if tk != flaky {
			grouped = append(grouped, tk)
		}
	}
	poly := fakepolygon.New(t, fakepolygon.Options{Key: polygonKey, Universe: grouped, NotGrouped: []string{flaky}, Handler: func(r fakepolygon.Request) fakepolygon.Response {
		if r.Ticker == flaky && failing.Load() {
			return fakepolygon.JSON(http.StatusServiceUnavailable, `{"status":"ERROR","error":"Service Unavailable"}`).With("Retry-After", "1")
		}
		bars, err := fakepolygon.SyntheticBars(r.Ticker, r.From, r.To)
		if err != nil {
			return fakepolygon.JSON(http.StatusBadRequest, `{"status":"ERROR","error":"bad dates"}`)
		}
		return fakepolygon.JSON(http.StatusOK, string(fakepolygon.Body(r.Ticker, bars, "")))
	}})

	h := &harness{t: t, art: art, db: db, sqs: sq, queue: queue, fns: map[string]*rie.Function{}, extra: map[string][]string{}, base: []string{
		"STAGE=" + stage, "LOG_LEVEL=info",
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_DYNAMODB=" + db.Endpoint, "AWS_ENDPOINT_URL_SQS=" + sq.Endpoint(),
		"USER_PORTFOLIOS_TABLE=" + deploy.UserPortfolios.Name(stage), "PORTFOLIO_POSITIONS_TABLE=" + deploy.PortfolioPositions.Name(stage),
		"TICKER_DATA_TABLE=" + deploy.TickerData.Name(stage), "PORTFOLIO_ANALYSES_TABLE=" + deploy.PortfolioAnalyses.Name(stage),
		"ANALYSIS_RESERVATIONS_TABLE=" + deploy.AnalysisReservations.Name(stage),
	}}
	// All three start before the first invocation, as in a deployment.
	h.start("processtickers", "TICKER_QUEUE_URL="+queueURL, "TICKER_MESSAGE_GROUPS=1", "DAILY_BARS_TABLE="+deploy.DailyBars.Name(stage))
	h.start("processticker", "POLYGON_BASE_URL="+poly.URL, "POLYGON_API_KEY="+polygonKey, "POLYGON_CALLS_PER_MINUTE=0",
		"TICKER_QUEUE_URL="+queueURL, "TICKER_DLQ_URL="+dlqURL, "DAILY_BARS_TABLE="+deploy.DailyBars.Name(stage))

	// The nights before filled the store: the window of the night's
	// indicators is complete but for the night itself.
	if err := devstack.FillHistory(ctx, bardb.NewStore(db.Client, deploy.DailyBars.Name(stage)), poly, grouped, marketdata.LastTradingDay(time.Now()), indicators.Lookback); err != nil {
		t.Fatal(err)
	}

	// A poison message is first in the queue.
	sqsClient := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(sq.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	if _, err := sqsClient.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(`{"v":1,"ticker":"AAPL"; DROP TABLE`),
		MessageGroupId: aws.String("tickers"), MessageDeduplicationId: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}

	t.Run("processTickers", func(t *testing.T) {
		var sum pipeline.Summary
		h.invoke("processtickers", map[string]any{
			"version": "0", "id": "e2e", "detail-type": "Scheduled Event", "source": "aws.scheduler",
			"time": "2026-11-28T02:30:00Z", "detail": map[string]any{},
		}, &sum)
		if sum.Mode != "scan" || sum.SymbolsFound != 7 || sum.Queued != 7 || sum.DayMessages != 1 || sum.Invalid != 1 || sum.Failed != 0 || sum.RunID == "" {
			t.Errorf("summary %+v: want a scan finding and queueing 7 after the day message, 1 invalid", sum)
		}
		if c := sq.Counts(queue); c.Visible != 9 {
			t.Errorf("queue holds %+v, want 9 visible (poison + the day message + 7)", c)
		}
	})

	t.Run("processTicker", func(t *testing.T) {
		failing.Store(true)
		ev, err := sq.Receive(queue, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Records) != 9 {
			t.Fatalf("batch of %d, want 9", len(ev.Records))
		}
		if m, err := tickerqueue.Decode([]byte(ev.Records[1].Body)); err != nil || !m.IsDay() || len(m.Tickers) != 7 {
			t.Fatalf("the second record %+v (%v), want the day message of the 7 tickers", m, err)
		}
		// The day message makes the grouped-daily and splits calls and
		// records the night. The flaky ticker's own call fails after the
		// in-process retries: as deployed (TICKER_QUEUE_URL and
		// TICKER_DLQ_URL set), processTicker acknowledges it and re-queues a
		// copy with attempt 1 to the tail of the queue, and the records
		// behind it go on; nothing is handed back. The poison message is
		// acknowledged.
		var aapl events.SQSMessage
		for _, r := range ev.Records {
			if strings.Contains(r.Body, `"ticker":"AAPL"`) && !strings.Contains(r.Body, "DROP") {
				aapl = r
			}
		}
		var resp events.SQSEventResponse
		h.invoke("processticker", ev, &resp)
		if got := failureIDs(resp); len(got) != 0 {
			t.Fatalf("batchItemFailures %v, want none (%s re-queued instead)", got, flaky)
		}
		if _, err := sq.Settle(queue, ev, resp, nil); err != nil {
			t.Fatal(err)
		}
		if rows := scanRows(t, db.Client, deploy.TickerData.Name(stage)); len(rows) != 6 {
			t.Errorf("%d rows after the first batch, want 6 (all but %s)", len(rows), flaky)
		}
		kinds := map[string]int{}
		for _, r := range poly.Requests() {
			kinds[r.Kind]++
		}
		if kinds[fakepolygon.KindGrouped] != 1 || kinds[fakepolygon.KindSplits] != 1 {
			t.Errorf("Polygon requests by kind %v, want one grouped-daily and one splits call", kinds)
		}
		store := bardb.NewStore(db.Client, deploy.DailyBars.Name(stage))
		night, ok, err := store.Night(ctx, marketdata.LastTradingDay(time.Now()))
		session, _, _ := store.Session(ctx, marketdata.LastTradingDay(time.Now()))
		if err != nil || !ok || len(night.Parts) != 1 || night.TickerCalls != 1 || session.Status != coverage.Stored {
			t.Errorf("night %+v (%v, %v), session %+v: want the day stored by the one day message, one per-ticker call (%s's, which the grouped answer lacks)", night, ok, err, session, flaky)
		}

		// The outage ends; the re-queued copy comes next, and AAPL a second
		// time (at-least-once delivery).
		failing.Store(false)
		ev2, err := sq.Receive(queue, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev2.Records) != 1 {
			t.Fatalf("second batch of %d records, want 1 (the re-queued %s)", len(ev2.Records), flaky)
		}
		if m, err := tickerqueue.Decode([]byte(ev2.Records[0].Body)); err != nil || m.Ticker != flaky || m.Attempt != 1 {
			t.Fatalf("second batch holds %+v (%v), want %s with attempt 1", m, err, flaky)
		}
		aapl.ReceiptHandle += "-again"
		withDup := events.SQSEvent{Records: append(slices.Clone(ev2.Records), aapl)}
		var resp2 events.SQSEventResponse
		h.invoke("processticker", withDup, &resp2)
		if len(resp2.BatchItemFailures) != 0 {
			t.Fatalf("second batch: batchItemFailures %v, want none", failureIDs(resp2))
		}
		if _, err := sq.Settle(queue, ev2, resp2, nil); err != nil {
			t.Fatal(err)
		}
		if c := sq.Counts(queue); c != (localsqs.Counts{}) {
			t.Errorf("queue after both batches %+v, want empty", c)
		}
		if c := sq.Counts(dlq); c != (localsqs.Counts{}) {
			t.Errorf("dead-letter queue %+v, want empty", c)
		}

		// One row per ticker, none duplicated, none missing.
		rows := scanRows(t, db.Client, deploy.TickerData.Name(stage))
		want7 := slices.Clone(devstack.SampleSymbols)
		slices.Sort(want7)
		if got := tickersOf(rows); !slices.Equal(got, want7) {
			t.Errorf("ticker-data rows %v, want exactly one each of %v", got, want7)
		}
		for _, r := range rows {
			for _, attr := range []string{"price", "rsi", "ma50", "asOf", "timestamp", "bars", "fetchedAt", "source"} {
				if _, ok := r[attr]; !ok {
					t.Errorf("row %v lacks %s", r["ticker"], attr)
				}
			}
		}
	})

	t.Run("analyzePortfolio", func(t *testing.T) {
		xs := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
		xs.RequireKey = xaiKey
		h.start("analyzeportfolio", "XAI_API_URL="+xs.URL, "XAI_API_KEY="+xaiKey, "XAI_MODEL=grok-4.3", "DEFAULT_PORTFOLIO=ZSM Seven",
			"ANALYSIS_QUEUE_URL="+analysisQueueURL)
		var res analyzer.Result
		h.invoke("analyzeportfolio", map[string]any{"portfolio_name": "ZSM Seven"}, &res)
		if len(res.Portfolios) != 1 || res.Portfolios[0].Status != analyzer.OutcomeOK || !slices.Equal(res.Done, []string{"ZSM Seven"}) {
			t.Fatalf("result %+v, want ZSM Seven analyzed ok", res)
		}
		items, err := analysisdb.New(db.Client, deploy.PortfolioAnalyses.Name(stage)).Recent(ctx, "ZSM Seven", 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 {
			t.Fatalf("%d stored analyses, want 1", len(items))
		}
		it := items[0]
		if it.Status != analysis.StatusOK || it.Model != "grok-4.3" || len(it.Result.Tickers) != 7 || it.DataAsOf == "" {
			t.Errorf("stored analysis status %q model %q tickers %d dataAsOf %q", it.Status, it.Model, len(it.Result.Tickers), it.DataAsOf)
		}
		// The same data again: the stored analysis is reused, xAI not called.
		calls := xs.Calls()
		var again analyzer.Result
		h.invoke("analyzeportfolio", map[string]any{"portfolio_name": "ZSM Seven"}, &again)
		if len(again.Portfolios) != 1 || again.Portfolios[0].Status != analyzer.OutcomeReused || xs.Calls() != calls {
			t.Errorf("second run %+v with %d xAI calls, want reused and no call", again, xs.Calls()-calls)
		}

		// "*" fans out: one message per portfolio on the analysis queue,
		// nothing analyzed in that invocation.
		var fan analyzer.Result
		h.invoke("analyzeportfolio", map[string]any{"portfolio_name": "*"}, &fan)
		if !slices.Equal(fan.Queued, []string{"ZSM Seven"}) || fan.RunID == "" || xs.Calls() != calls {
			t.Fatalf("fan-out %+v", fan)
		}
		batch, err := sq.Receive(analysisQueue, 1)
		if err != nil || len(batch.Records) != 1 {
			t.Fatalf("analysis queue: %v %+v", err, batch)
		}
		// The queue's event goes to the same bootstrap: analyzed (reused:
		// the same data), acknowledged, nothing sent back to the queue.
		var resp events.SQSEventResponse
		h.invoke("analyzeportfolio", batch, &resp)
		if len(resp.BatchItemFailures) != 0 || xs.Calls() != calls {
			t.Errorf("queue batch answered %+v with %d calls", resp, xs.Calls()-calls)
		}
		if _, err := sq.Settle(analysisQueue, batch, resp, nil); err != nil {
			t.Fatal(err)
		}
		if c := sq.Counts(analysisQueue); c != (localsqs.Counts{}) {
			t.Errorf("analysis queue after the batch %+v, want empty: the consumer never re-sends", c)
		}
	})

	// Cold starts: a fresh instance of each function invoked three times with
	// an event that does the same small work each time; the first invocation
	// includes starting the bootstrap and its initialisation.
	t.Run("coldStarts", func(t *testing.T) {
		cheap := map[string]struct {
			event any
			out   func() any
		}{
			"processtickers":   {map[string]any{"tickers": []string{"AAPL"}}, func() any { return new(pipeline.Summary) }},
			"processticker":    {events.SQSEvent{Records: []events.SQSMessage{}}, func() any { return new(events.SQSEventResponse) }},
			"analyzeportfolio": {map[string]any{"portfolio_name": "ZSM Seven"}, func() any { return new(analyzer.Result) }},
		}
		for _, fn := range functionDirs {
			if h.fns[fn] == nil {
				t.Fatalf("%s never started", fn)
			}
			f := h.start(fn, h.extra[fn]...)
			for range 3 {
				h.invoke(fn, cheap[fn].event, cheap[fn].out())
			}
			reps := f.WaitReports(3, 5*time.Second)
			if len(reps) != 3 || reps[0].Init <= 0 || reps[1].Init != 0 {
				t.Errorf("%s: want 3 REPORT lines, an Init Duration on the first only; got %+v\n%s", fn, reps, f.Output())
				continue
			}
			cold, _ := f.ColdStart()
			rssText := "unknown"
			if rss, err := f.PeakRSSKiB(); err == nil {
				rssText = fmt.Sprintf("%.1f MB", float64(rss)/1024)
			}
			t.Logf("%-16s cold start %6.1f ms (first invoke %6.1f ms, warm %5.1f ms); emulator REPORT: Init Duration %.2f ms, Max Memory Used %d MB (= memory size); peak RSS %s",
				fn, ms(cold), ms(f.Walls()[0]), ms(f.Walls()[1]), ms(reps[0].Init), reps[0].MaxMemoryUsedMB, rssText)
		}
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func failureIDs(r events.SQSEventResponse) []string {
	var ids []string
	for _, f := range r.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func scanRows(t *testing.T, c *dynamodb.Client, table string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := c.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// tickersOf lists the rows' tickers, sorted, duplicates kept.
func tickersOf(rows []map[string]types.AttributeValue) []string {
	var out []string
	for _, r := range rows {
		if s, ok := r["ticker"].(*types.AttributeValueMemberS); ok {
			out = append(out, s.Value)
		}
	}
	slices.Sort(out)
	return out
}
