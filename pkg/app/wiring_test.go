package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/app/processtickers"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/sqsqueue"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

func mapLookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// localAWS points the SDK's default configuration at local endpoints with
// dummy credentials, and away from any profile on the machine.
func localAWS(t *testing.T, ddb, sqs, sm string) {
	t.Helper()
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddb)
	t.Setenv("AWS_ENDPOINT_URL_SQS", sqs)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", sm)
}

func put(t *testing.T, c *dynamodb.Client, table string, items ...map[string]types.AttributeValue) {
	t.Helper()
	for _, it := range items {
		if _, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &table, Item: it}); err != nil {
			t.Fatal(err)
		}
	}
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// The nightly pipeline through the deployed wiring: processTickers scans
// the shared tables on dynalite and queues to a local FIFO queue through the
// real SQS client; processTicker consumes the queue with the real Polygon
// client against a local Polygon and writes ticker-data on dynalite.
func TestPipelineEndToEnd(t *testing.T) {
	env := dynalitetest.New(t)
	sqsSrv, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sqsSrv.Close()
	const queueName = "ticker-processing-queue-local.fifo"
	queueURL := sqsSrv.CreateQueue(queueName)
	localAWS(t, env.Endpoint, sqsSrv.Endpoint(), "http://127.0.0.1:1")

	put(t, env.Client, deploy.UserPortfolios.Name(env.Stage),
		map[string]types.AttributeValue{"userId": s("u1"), "portfolioId": s("p1"), "name": s("ZSM Seven"),
			"tickers": &types.AttributeValueMemberSS{Value: []string{"BRK.B", "aapl"}}})
	put(t, env.Client, deploy.PortfolioPositions.Name(env.Stage),
		map[string]types.AttributeValue{"portfolioId": s("p1"), "positionId": s("1"), "ticker": s("AAPL")},
		map[string]types.AttributeValue{"portfolioId": s("p1"), "positionId": s("2"), "symbol": s("msft")},
		map[string]types.AttributeValue{"portfolioId": s("legacy"), "positionId": s("3"), "portfolio": s("ZSM Seven"), "ticker": s("NVDA")},
		map[string]types.AttributeValue{"portfolioId": s("p1"), "positionId": s("4"), "ticker": s("bad$")})

	var out bytes.Buffer
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-nightly-1"})
	collect, err := processtickers.New(ctx, mapLookup(map[string]string{
		"STAGE": env.Stage, "USER_PORTFOLIOS_TABLE": deploy.UserPortfolios.Name(env.Stage),
		"PORTFOLIO_POSITIONS_TABLE": deploy.PortfolioPositions.Name(env.Stage), "TICKER_QUEUE_URL": queueURL,
		"DAILY_BARS_TABLE": deploy.DailyBars.Name(env.Stage), "TICKER_DATA_TABLE": deploy.TickerData.Name(env.Stage),
	}), &out)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := collect(ctx, json.RawMessage(`{}`))
	if err != nil {
		t.Fatalf("processTickers: %v\n%s", err, out.String())
	}
	if sum.Queued != 4 || sum.SymbolsFound != 4 || sum.Invalid != 1 || sum.ItemsScanned != 5 {
		t.Fatalf("summary %+v", sum)
	}
	// Lambda retries a failed asynchronous invocation with the same request
	// id, hence the same run id: FIFO de-duplication keeps one message per
	// ticker.
	if _, err := collect(ctx, json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	if c := sqsSrv.Counts(queueName); c.Visible != 5 {
		t.Fatalf("queue counts %+v after a retried run, want 5 visible (the day message and 4 tickers)", c)
	}

	const key = "pk-test-0123456789"
	// The grouped answers carry the whole market: here, the four held.
	poly := fakepolygon.New(t, fakepolygon.Options{Key: key, Universe: []string{"AAPL", "BRK.B", "MSFT", "NVDA"}})
	dlqURL := sqsSrv.CreateQueue("ticker-processing-dlq-local.fifo")
	process, err := processticker.New(ctx, mapLookup(map[string]string{
		"STAGE": env.Stage, "TICKER_DATA_TABLE": deploy.TickerData.Name(env.Stage), "POLYGON_BASE_URL": poly.URL,
		"DAILY_BARS_TABLE":         deploy.DailyBars.Name(env.Stage),
		"POLYGON_CALLS_PER_MINUTE": "0", "POLYGON_API_KEY": key, "LOG_LEVEL": "debug",
		"TICKER_QUEUE_URL": queueURL, "TICKER_DLQ_URL": dlqURL,
	}), &out)
	if err != nil {
		t.Fatal(err)
	}
	totals, err := sqsSrv.Drain(ctx, queueName, 10, localsqs.Handler(process))
	if err != nil {
		t.Fatal(err)
	}
	// A cold night: the day message, its 4 tickers, the 252 fill messages it
	// queued (the window of 253 sessions), the 4 tickers again.
	if totals.Deleted != 5+252+4 || totals.Requeued != 0 || totals.DeadLettered != 0 {
		t.Fatalf("queue totals %+v\n%s", totals, out.String())
	}
	// The day, the splits of the window, one grouped call per missing session.
	if poly.Calls() != 254 {
		t.Errorf("%d Polygon calls for a cold night of 4 tickers, want 254", poly.Calls())
	}

	store := tickerdb.NewStore(env.Client, deploy.TickerData.Name(env.Stage))
	// The newest complete bar: the local Polygon serves every weekday, and
	// processTicker asks up to the last trading day whose close has passed.
	asOf := marketdata.LastTradingDay(time.Now())
	ny, _ := time.LoadLocation("America/New_York")
	for _, tk := range []string{"AAPL", "BRK.B", "MSFT", "NVDA"} {
		row, ok, err := store.Latest(ctx, tk)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", tk, ok, err)
		}
		d, _ := time.ParseInLocation(time.DateOnly, asOf, ny)
		wantTS := time.Date(d.Year(), d.Month(), d.Day(), 16, 0, 0, 0, ny)
		bars, err := fakepolygon.SyntheticBars(tk, d.AddDate(0, 0, -400).Format(time.DateOnly), asOf)
		if err != nil {
			t.Fatal(err)
		}
		if row.AsOf != asOf || !row.Timestamp.Equal(wantTS) || row.Price != bars[len(bars)-1].C || row.RSI == nil || row.MA50 == nil ||
			row.Bars < 250 || row.Source != "polygon" {
			t.Errorf("%s row %+v (want asOf %s, close %v, ≥ 250 bars)", tk, row, asOf, bars[len(bars)-1].C)
		}
	}
	logs := out.String()
	if strings.Contains(logs, key) {
		t.Error("the Polygon key appears in the logs")
	}
	for _, want := range []string{`"TickersQueued":4`, `"InvalidSymbols":1`, `"function":"processTicker"`, `"function":"processTickers"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	// Over every invocation: 4 partial rows, then the 4 complete ones.
	for name, want := range map[string]float64{"TickersProcessed": 8, "MarketDataCalls": 254, "SessionsFilled": 252, "TickersBackfilled": 0} {
		if got := emfSum(logs, name); got != want {
			t.Errorf("%s %v, want %v", name, got, want)
		}
	}
}

// emfSum sums a metric over the EMF documents of logs.
func emfSum(logs, name string) float64 {
	var sum float64
	for _, line := range strings.Split(logs, "\n") {
		var doc map[string]any
		if strings.Contains(line, `"_aws"`) && json.Unmarshal([]byte(line), &doc) == nil {
			if v, ok := doc[name].(float64); ok {
				sum += v
			}
		}
	}
	return sum
}

// fakeSecretsManager answers GetSecretValue with secret (Secrets Manager's
// JSON protocol).
func fakeSecretsManager(t *testing.T, secret string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetSecretValue") {
			http.Error(w, "unexpected call", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		b, _ := json.Marshal(map[string]any{"ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:zsm-seven/local/api-keys", "Name": "zsm-seven/local/api-keys", "SecretString": secret})
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestProcessTickerStartUp(t *testing.T) {
	base := map[string]string{"STAGE": "local", "TICKER_DATA_TABLE": "ticker-data-local", "DAILY_BARS_TABLE": "daily-bars-local",
		"API_KEYS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:zsm-seven/local/api-keys"}
	tests := []struct {
		name, secret string
		env          map[string]string
		want         string // "" means start-up succeeds
	}{
		{"key in the secret", `{"POLYGON_API_KEY":"from-secret","XAI_API_KEY":"x"}`, nil, ""},
		{"key missing from the secret", `{"XAI_API_KEY":"x"}`, nil, "POLYGON_API_KEY: API key not set in secret"},
		{"secret is not JSON", `POLYGON_API_KEY=abc`, nil, "is not a JSON object"},
		{"environment wins, secret not read", `not read`, map[string]string{"POLYGON_API_KEY": "from-env"}, ""},
		{"neither key nor secret", ``, map[string]string{"API_KEYS_SECRET_ARN": ""}, "POLYGON_API_KEY or API_KEYS_SECRET_ARN must be set"},
		{"bad rate", ``, map[string]string{"POLYGON_CALLS_PER_MINUTE": "fast"}, "POLYGON_CALLS_PER_MINUTE must be an integer"},
		{"queue without its DLQ", ``, map[string]string{"TICKER_QUEUE_URL": "http://127.0.0.1:1/000000000000/q.fifo"}, "TICKER_DLQ_URL is required when TICKER_QUEUE_URL is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			localAWS(t, "http://127.0.0.1:1", "http://127.0.0.1:1", fakeSecretsManager(t, tt.secret))
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			h, err := processticker.New(context.Background(), mapLookup(env), &bytes.Buffer{})
			if tt.want == "" {
				if err != nil || h == nil {
					t.Fatalf("start-up failed: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "abc") {
				t.Fatalf("error quotes the secret: %v", err)
			}
		})
	}
}

func TestProcessTickersStartUpNamesTheVariable(t *testing.T) {
	_, err := processtickers.New(context.Background(), mapLookup(map[string]string{"STAGE": "local",
		"USER_PORTFOLIOS_TABLE": "a", "PORTFOLIO_POSITIONS_TABLE": "b", "DAILY_BARS_TABLE": "c", "TICKER_DATA_TABLE": "d"}), &bytes.Buffer{})
	if err == nil || err.Error() != "configuration: TICKER_QUEUE_URL is required but not set" {
		t.Fatalf("err = %v", err)
	}
}

// With TICKER_QUEUE_URL and TICKER_DLQ_URL, processTicker re-queues a record
// that failed transiently through the real SQS client (FIFO group and
// de-duplication ids checked by localsqs) and, at the last attempt, sends it
// to the dead-letter queue; the records behind it are written meanwhile.
func TestProcessTickerRequeuesThroughSQS(t *testing.T) {
	sqsSrv, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sqsSrv.Close()
	const queueName, dlqName = "ticker-processing-queue-local.fifo", "ticker-processing-dlq-local.fifo"
	queueURL, dlqURL := sqsSrv.CreateQueue(queueName), sqsSrv.CreateQueue(dlqName)
	localAWS(t, "http://127.0.0.1:1", sqsSrv.Endpoint(), "http://127.0.0.1:1")

	const key = "pk-test-requeue"
	poly := fakepolygon.New(t, fakepolygon.Options{Key: key, Handler: func(r fakepolygon.Request) fakepolygon.Response {
		if r.Ticker == "DOWN" {
			return fakepolygon.JSON(503, `{"status":"ERROR","error":"service unavailable"}`)
		}
		bars, err := fakepolygon.SyntheticBars(r.Ticker, r.From, r.To)
		if err != nil {
			return fakepolygon.JSON(500, err.Error())
		}
		return fakepolygon.Response{Status: 200, Body: fakepolygon.Body(r.Ticker, bars, "")}
	}})
	cfg, err := config.LoadProcessTicker(mapLookup(map[string]string{
		"STAGE": "local", "TICKER_DATA_TABLE": "ticker-data-local", "DAILY_BARS_TABLE": "daily-bars-local", "POLYGON_BASE_URL": poly.URL, "POLYGON_CALLS_PER_MINUTE": "0",
		"POLYGON_API_KEY": key, "TICKER_QUEUE_URL": queueURL, "TICKER_DLQ_URL": dlqURL,
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sqsClient := sqs.NewFromConfig(aws.Config{Region: localsqs.Region, BaseEndpoint: aws.String(sqsSrv.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	var out bytes.Buffer
	store := &memStore{}
	h, err := processticker.Build(processticker.Deps{Config: cfg, Rows: store, History: history(t), Keys: staticKeys(key), Out: &out,
		Requeuer: sqsqueue.NewRequeuer(sqsClient, cfg.TickerQueueURL, cfg.TickerDLQURL),
		Retry:    &retry.Policy{Sleep: func(context.Context, time.Duration) error { return nil }}})
	if err != nil {
		t.Fatal(err)
	}
	pub := sqsqueue.NewPublisher(sqsClient, queueURL, sqsqueue.PublisherOptions{})
	var msgs []queue.Message
	for _, tk := range []string{"DOWN", "AAPL", "MSFT"} {
		msgs = append(msgs, queue.New(tk, "run-rq", time.Now()))
	}
	if res, err := pub.Publish(ctx, msgs); err != nil || res.Queued != 3 {
		t.Fatalf("publish %+v %v", res, err)
	}
	totals, err := sqsSrv.Drain(ctx, queueName, 10, localsqs.Handler(h))
	if err != nil {
		t.Fatal(err)
	}
	// DOWN: the batch of 3, then its 4 re-queued copies alone.
	if totals.Batches != 5 || totals.Deleted != 7 || totals.Requeued != 0 || totals.DeadLettered != 0 {
		t.Errorf("queue totals %+v", totals)
	}
	var stored []string
	for _, r := range store.rows {
		stored = append(stored, r.Ticker)
	}
	if !slices.Equal(stored, []string{"AAPL", "MSFT"}) {
		t.Errorf("stored %v", stored)
	}
	dead := sqsSrv.Visible(dlqName)
	if len(dead) != 1 {
		t.Fatalf("dead-letter queue holds %d messages, want 1", len(dead))
	}
	m, err := queue.Decode([]byte(dead[0]))
	if err != nil || m.Ticker != "DOWN" || m.Attempt != 4 || m.RunID != "run-rq" {
		t.Errorf("dead letter %+v %v", m, err)
	}
	if c := sqsSrv.Counts(queueName); c != (localsqs.Counts{}) {
		t.Errorf("queue left with %+v", c)
	}
	for _, want := range []string{`"TickersRequeued":1`, `"TickersDeadLettered":1`, `"attempts":5`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %s", want)
		}
	}
}

// memStore keeps the rows written.
type memStore struct{ rows []pipeline.Row }

func (m *memStore) PutRow(_ context.Context, r pipeline.Row) error {
	m.rows = append(m.rows, r)
	return nil
}

func (m *memStore) HasRow(_ context.Context, ticker, date string) (bool, error) {
	for _, r := range m.rows {
		if r.Ticker == ticker && r.AsOf == date && !r.Partial {
			return true, nil
		}
	}
	return false, nil
}

// history is an empty daily-bars table on dynalite: a v1 message (no day
// message) fetches the ticker's own bars.
func history(t *testing.T) pipeline.History {
	t.Helper()
	env := dynalitetest.New(t, deploy.DailyBars)
	return bardb.NewStore(env.Client, deploy.DailyBars.Name(env.Stage))
}

type staticKeys string

func (k staticKeys) Get(context.Context, string) (string, error) { return string(k), nil }

func msg(t *testing.T, ticker string) string {
	t.Helper()
	b, err := queue.New(ticker, "run-1", time.Now()).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The Polygon client's error classes, as the batch handler sees them through
// the real client and a local Polygon: no data is acknowledged and counted,
// a 503 that outlasts the client's retries is handed back, a 429 followed by
// success is stored, and a 403 (the plan) stops the run: that record and
// every later one are handed back, none acknowledged as a permanent failure.
func TestProcessTickerClassifiesPolygonErrors(t *testing.T) {
	const key = "pk-live-classes"
	poly := fakepolygon.New(t, fakepolygon.Options{Key: key})
	poly.EnqueueFor("NOAUTH", fakepolygon.JSON(403, `{"status":"NOT_AUTHORIZED","request_id":"r1","message":"You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"}`))
	poly.EnqueueFor("NONE", fakepolygon.JSON(200, `{"ticker":"NONE","queryCount":0,"resultsCount":0,"adjusted":true,"status":"OK","request_id":"r2"}`))
	unavailable := fakepolygon.JSON(503, `{"status":"ERROR","error":"service unavailable"}`)
	poly.EnqueueFor("DOWN", unavailable, unavailable, unavailable, unavailable, unavailable, unavailable)
	poly.EnqueueFor("SLOWED", fakepolygon.JSON(429, fakepolygon.BodyRateLimited))

	var out bytes.Buffer
	store := &memStore{}
	h, err := processticker.Build(processticker.Deps{
		Config: config.ProcessTicker{Stage: "test", PolygonBaseURL: poly.URL, RecordBudget: time.Second},
		Rows:   store, History: history(t), Keys: staticKeys(key), Out: &out,
		Retry: &retry.Policy{Sleep: func(context.Context, time.Duration) error { return nil }}, // retry at once
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	for _, tk := range []string{"AAPL", "NONE", "DOWN", "SLOWED", "NOAUTH", "LATER"} {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: "id-" + tk, Body: msg(t, tk), EventSourceARN: "arn:aws:sqs:us-east-1:0:q"})
	}
	resp, err := h(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	if !slices.Equal(ids, []string{"id-DOWN", "id-NOAUTH", "id-LATER"}) {
		t.Errorf("handed back %v, want [id-DOWN id-NOAUTH id-LATER]", ids)
	}
	var stored []string
	for _, r := range store.rows {
		stored = append(stored, r.Ticker)
	}
	if !slices.Equal(stored, []string{"AAPL", "SLOWED"}) {
		t.Errorf("stored %v, want [AAPL SLOWED]", stored)
	}
	var emf map[string]any
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, `"_aws"`) {
			if err := json.Unmarshal([]byte(line), &emf); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range map[string]float64{"TickersProcessed": 2, "PermanentFailures": 1, "TransientFailures": 3, "MarketDataThrottled": 1, "MarketDataKeyRefused": 1} {
		if emf[name] != want {
			t.Errorf("metric %s = %v, want %v", name, emf[name], want)
		}
	}
	if strings.Contains(out.String(), key) {
		t.Error("the key appears in the output")
	}
}

// The key is rotated in the secret while processTicker is warm: the first
// call is refused (401), the wiring re-reads the secret once (secrets.Keys
// Refresh), the client sends the new key, and the batch goes on. (A key
// still refused after the re-read stops the run: pkg/pipeline's
// TestRefusedKeyStopsTheRunAndLosesNothing.)
func TestProcessTickerReReadsARotatedKey(t *testing.T) {
	var reads atomic.Int32
	secret := func() string {
		if reads.Add(1) == 1 {
			return `{"POLYGON_API_KEY":"pk-old-rotated-out"}`
		}
		return `{"POLYGON_API_KEY":"pk-new-current"}`
	}
	sm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		b, _ := json.Marshal(map[string]any{"ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:k", "Name": "k", "SecretString": secret()})
		w.Write(b)
	}))
	t.Cleanup(sm.Close)
	localAWS(t, "http://127.0.0.1:1", "http://127.0.0.1:1", sm.URL)
	poly := fakepolygon.New(t, fakepolygon.Options{Key: "pk-new-current"})
	// The cold start reads the secret: the old key, cached.
	var out bytes.Buffer
	d, err := processticker.FromEnv(context.Background(), mapLookup(map[string]string{
		"STAGE": "local", "TICKER_DATA_TABLE": "ticker-data-local", "DAILY_BARS_TABLE": "daily-bars-local",
		"POLYGON_BASE_URL": poly.URL, "POLYGON_CALLS_PER_MINUTE": "0",
		"API_KEYS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:k",
	}), &out)
	if err != nil {
		t.Fatal(err)
	}
	// In-memory rows and v1 messages (each ticker its own call): this test
	// is about the key.
	d.Rows, d.History = &memStore{}, history(t)
	h, err := processticker.Build(d)
	if err != nil {
		t.Fatal(err)
	}
	ev := events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "a", Body: msg(t, "AAPL"), EventSourceARN: "arn:aws:sqs:us-east-1:0:q.fifo"},
		{MessageId: "b", Body: msg(t, "MSFT"), EventSourceARN: "arn:aws:sqs:us-east-1:0:q.fifo"},
	}}
	resp, err := h(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v %v\n%s", resp, err, out.String())
	}
	reqs := poly.Requests()
	if len(reqs) != 3 || reqs[0].Authorization != "Bearer pk-old-rotated-out" || reqs[1].Authorization != "Bearer pk-new-current" {
		t.Fatalf("%d requests, keys %q %q", len(reqs), reqs[0].Authorization, reqs[1].Authorization)
	}
	if reads.Load() != 2 || len(d.Rows.(*memStore).rows) != 2 {
		t.Errorf("secret read %d times, %d rows", reads.Load(), len(d.Rows.(*memStore).rows))
	}
	if strings.Contains(out.String(), "pk-old-rotated-out") || strings.Contains(out.String(), "pk-new-current") {
		t.Error("a key is in the logs")
	}
}

// `zsm run --date` gives analyzePortfolio a past night as Deps.Now: it
// decides which trading day is current, never what time it is. A queued
// portfolio with less than MinWork (60 s) left of its invocation is still
// handed back, not started against a deadline measured on another clock.
func TestAnalyzeNowIsTheNightNotTheClock(t *testing.T) {
	env := dynalitetest.New(t)
	stage := env.Stage
	night := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC) // 01:00 New York, the morning after 2026-11-23
	var out bytes.Buffer
	cfg := config.AnalyzePortfolio{Stage: stage, DefaultPortfolio: "ZSM Seven",
		UserPortfoliosTable: deploy.UserPortfolios.Name(stage), PortfolioPositionsTable: deploy.PortfolioPositions.Name(stage),
		TickerDataTable: deploy.TickerData.Name(stage), PortfolioAnalysesTable: deploy.PortfolioAnalyses.Name(stage),
		ReservationsTable: deploy.AnalysisReservations.Name(stage)}
	fn := analyzeportfolio.Build(analyzeportfolio.Deps{
		Config: cfg,
		Ports:  analyzeportfolio.AWS(env.Client, nil, cfg),
		Keys:   staticKeys(""),
		Out:    &out,
		Now:    func() time.Time { return night },
	})
	body, err := analysisqueue.New("ZSM Seven", "run-1", false, night).Encode()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := fn.Consume(ctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: body, EventSource: "aws:sqs",
		EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:" + deploy.AnalysisQueueName(stage), Attributes: map[string]string{"ApproximateReceiveCount": "1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "m1" {
		t.Fatalf("batch response %+v, want m1 handed back (10 s left, less than 60 s)\n%s", resp, out.String())
	}
}
