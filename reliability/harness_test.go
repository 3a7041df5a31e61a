package reliability

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/app/processtickers"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/sqsqueue"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// world is one scenario's service: its own tables, queue, Polygon server and
// log buffer, wired as deployed.
type world struct {
	t     *testing.T
	stage string
	db    *dynamodb.Client
	poly  *fakepolygon.Server
	sqs   *localsqs.Server
	queue string // FIFO queue name
	dlq   string // its dead-letter queue, to which processTicker sends
	logs  *logSink
	log   *slog.Logger

	producer *pipeline.ProcessTickers
	consumer *pipeline.ProcessTicker
	client   *polygon.Client

	// clock, when the scenario asks for one, is the night's: the local
	// Polygon's (what is published), processTickers' (the trading day) and
	// the local queue's (visibility timeouts).
	clock *fakeclock.Clock
	// date is the trading day the last publish queued.
	date string

	mu       sync.Mutex
	sleeps   []time.Duration // waits the Polygon client asked for (not slept)
	rawSent  int             // bodies sent by sendRaw (their de-duplication ids)
	key      string          // the key the Polygon client sends
	next     string          // what a re-read of the secret returns ("" = the same)
	rereads  int
	outcomes map[string]pipeline.Record // the last outcome of each message id
}

// worldOptions vary the wiring.
type worldOptions struct {
	// clientKey is the key the Polygon client sends (polygonKey if "").
	clientKey string
	// db and stage, if set, replace the shared dynalite (tables created).
	db    *dynamodb.Client
	stage string
	// polygon configures the local Polygon (Key is always polygonKey).
	polygon fakepolygon.Options
	// attemptTimeout bounds one Polygon request (1 s if 0: generous, so that only scripted delays time out on a loaded machine).
	attemptTimeout time.Duration
	// recordBudget, dayBudget and reserve tune the consumer's deadline
	// handling.
	recordBudget, dayBudget, reserve time.Duration
	// sessions is the window of the consumer's indicators (0: the
	// indicators' 253): a scenario with a cold fill keeps it short.
	sessions int
	// clock starts a night clock at this instant (zero: the real time).
	clock time.Time
	// visibility simulates the queue's visibility timeout on the clock (0:
	// a handed-back record is visible again at once).
	visibility time.Duration
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	w := &world{t: t, logs: &logSink{}, outcomes: map[string]pipeline.Record{}}
	var now func() time.Time
	if !o.clock.IsZero() {
		w.clock = fakeclock.New(o.clock)
		now = w.clock.Now
		o.polygon.Now = now
	}
	if o.db != nil {
		w.db, w.stage = o.db, o.stage
	} else {
		env := dynalitetest.New(t)
		w.db, w.stage = env.Client, env.Stage
	}
	w.log = logging.New(w.logs, slog.LevelDebug)
	t.Cleanup(func() { _, _ = allLogs.Write([]byte(w.logs.String())) })

	o.polygon.Key = polygonKey
	w.poly = fakepolygon.New(t, o.polygon)
	var err error
	so := localsqs.Options{VisibilityTimeout: o.visibility}
	if w.clock != nil {
		so.Clock = w.clock
	}
	w.sqs, err = localsqs.Start("127.0.0.1:0", so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.sqs.Close() })
	w.queue = "ticker-processing-queue-" + w.stage + ".fifo"
	queueURL := w.sqs.CreateQueue(w.queue)
	w.dlq = "ticker-processing-dlq-" + w.stage + ".fifo"
	dlqURL := w.sqs.CreateQueue(w.dlq)

	sqsClient := sqs.New(sqs.Options{Region: localsqs.Region, BaseEndpoint: aws.String(w.sqs.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	bars := bardb.NewStore(w.db, deploy.DailyBars.Name(w.stage))
	rows := tickerdb.NewStore(w.db, deploy.TickerData.Name(w.stage))
	publisher := sqsqueue.NewPublisher(sqsClient, queueURL, sqsqueue.PublisherOptions{Groups: 1})
	w.producer = &pipeline.ProcessTickers{
		Source:    processtickers.Holdings(portfoliodb.NewReader(w.db, deploy.UserPortfolios.Name(w.stage), deploy.PortfolioPositions.Name(w.stage))),
		Publisher: publisher,
		Nights:    bars, Rows: rows, Groups: 1,
		Metrics: metrics.New(w.logs, w.stage),
		Logger:  w.log.With("function", "processTickers"),
		Now:     now,
	}

	w.key = o.clientKey
	if w.key == "" {
		w.key = polygonKey
	}
	if o.attemptTimeout == 0 {
		o.attemptTimeout = time.Second
	}
	// The deployed retry policy's shape (4 attempts, full jitter, Retry-After
	// honoured up to a minute) with its waits recorded instead of slept.
	w.client, err = polygon.New(polygon.Options{
		BaseURL: w.poly.URL, APIKey: w.apiKey, AttemptTimeout: o.attemptTimeout,
		Logger: w.log.With("function", "processTicker"),
		Retry:  retry.Policy{Attempts: polygon.DefaultRetry.Attempts, Base: polygon.DefaultRetry.Base, Cap: polygon.DefaultRetry.Cap, MaxRetryAfter: polygon.DefaultRetry.MaxRetryAfter},
		Sleep: func(ctx context.Context, d time.Duration) error {
			w.mu.Lock()
			w.sleeps = append(w.sleeps, d)
			w.mu.Unlock()
			return ctx.Err()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.consumer = &pipeline.ProcessTicker{
		// As deployed: the stored history kept complete by grouped calls, the
		// fill queued on the ticker queue.
		Market: w.client, Rows: processticker.Rows(rows), History: bars, Publisher: publisher, Source: "polygon",
		Sessions: o.sessions, RecordBudget: o.recordBudget, DayBudget: o.dayBudget, Reserve: o.reserve, MarketNow: now,
		// As deployed: a transient failure is re-queued to the tail (or,
		// after 5 attempts, dead-lettered) instead of handed back; records
		// handed back unstarted are released; a refused key is re-read once.
		Requeuer:   sqsqueue.NewRequeuer(sqsClient, queueURL, dlqURL),
		Visibility: sqsqueue.NewVisibility(sqsClient, queueURL),
		RefreshKey: w.reread,
		Metrics:    metrics.New(w.logs, w.stage), Logger: w.log.With("function", "processTicker"),
		Observer: func(r pipeline.Record) {
			w.mu.Lock()
			w.outcomes[r.MessageID] = r
			w.mu.Unlock()
		},
	}
	return w
}

// apiKey is the Polygon client's key source: the key the secret holds.
func (w *world) apiKey(context.Context) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.key, nil
}

// reread plays secrets.Keys.Refresh: the secret read again, holding next
// when an operator rotated the key.
func (w *world) reread(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rereads++
	if w.next != "" {
		w.key = w.next
	}
	return nil
}

// nightOf is 21:30 New York on trading day d.
func nightOf(d string) time.Time {
	c, _ := marketdata.CloseInstant(d)
	return c.Add(5*time.Hour + 30*time.Minute)
}

// fillHistory stores what the nights before the trading day date would
// have: the sessions of its window before it, with the bars of grouped (the
// tickers of the grouped answers).
func (w *world) fillHistory(date string, grouped ...string) {
	w.t.Helper()
	n := w.consumer.Sessions
	if n == 0 {
		n = indicators.Lookback
	}
	if err := devstack.FillHistory(context.Background(), w.consumer.History.(*bardb.Store), w.poly, grouped, date, n); err != nil {
		w.t.Fatal(err)
	}
}

// hold writes one position per ticker into the shared tables (the catch-up
// run scans them).
func (w *world) hold(tickers ...string) {
	w.t.Helper()
	for i, tk := range tickers {
		_, err := w.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(deploy.PortfolioPositions.Name(w.stage)),
			Item: map[string]types.AttributeValue{
				"portfolioId": &types.AttributeValueMemberS{Value: "p1"}, "positionId": &types.AttributeValueMemberS{Value: fmt.Sprint(i)},
				"ticker": &types.AttributeValueMemberS{Value: tk},
			}})
		if err != nil {
			w.t.Fatal(err)
		}
	}
}

// catchUp runs processTickers' catch-up event and returns its summary.
func (w *world) catchUp() pipeline.Summary {
	w.t.Helper()
	sum, err := w.producer.Handle(context.Background(), json.RawMessage(`{"catchUp":true}`))
	if err != nil {
		w.t.Fatalf("catch-up: %v", err)
	}
	return sum
}

// publish runs processTickers for the given tickers (a manual event) and
// returns its summary.
func (w *world) publish(tickers ...string) pipeline.Summary {
	w.t.Helper()
	ev, _ := json.Marshal(map[string][]string{"tickers": tickers})
	sum, err := w.producer.Handle(context.Background(), ev)
	if err != nil {
		w.t.Fatalf("processTickers: %v", err)
	}
	w.date = sum.Date
	return sum
}

// sendRaw puts a body on the queue as another producer would (poison).
func (w *world) sendRaw(bodies ...string) {
	w.t.Helper()
	sqsClient := sqs.New(sqs.Options{Region: localsqs.Region, BaseEndpoint: aws.String(w.sqs.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	for _, b := range bodies {
		w.mu.Lock()
		w.rawSent++
		i := w.rawSent
		w.mu.Unlock()
		_, err := sqsClient.SendMessage(context.Background(), &sqs.SendMessageInput{
			QueueUrl: aws.String(w.sqs.QueueURL(w.queue)), MessageBody: aws.String(b),
			MessageGroupId: aws.String("tickers"), MessageDeduplicationId: aws.String(fmt.Sprintf("poison-%d", i)),
		})
		if err != nil {
			w.t.Fatalf("send poison %d: %v", i, err)
		}
	}
}

// drainOptions shape the deliveries of drain.
type drainOptions struct {
	// ctx returns invocation n's context (deadline); nil: no deadline.
	ctx func(n int) (context.Context, context.CancelFunc)
	// before runs before invocation n takes its batch.
	before func(n int)
	// loseAck reports that invocation n's answer never reaches SQS (the
	// function timed out after its work was done): every record of the
	// batch is delivered again.
	loseAck func(n int) bool
}

// drained is what the deliveries did.
type drained struct {
	Invocations, Deliveries, Panics int
	// HandedBack lists the tickers each invocation handed back, in order.
	HandedBack [][]string
}

// drain plays the event source mapping: batches of up to 10 from the FIFO
// queue to the consumer until the queue is empty (a message that keeps
// failing reaches the dead-letter queue after 5 attempts, sent there by
// processTicker, or after 5 receives when handed back).
func (w *world) drain(o drainOptions) drained {
	w.t.Helper()
	var d drained
	for n := 0; n < 200; n++ {
		if o.before != nil {
			o.before(n)
		}
		ev, err := w.sqs.Receive(w.queue, localsqs.MaxBatch)
		if err != nil {
			w.t.Fatal(err)
		}
		if len(ev.Records) == 0 {
			return d
		}
		d.Invocations++
		d.Deliveries += len(ev.Records)
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if o.ctx != nil {
			ctx, cancel = o.ctx(n)
		}
		resp, herr, panicked := w.invoke(ctx, ev)
		cancel()
		if panicked {
			d.Panics++
		}
		failed := map[string]bool{}
		for _, f := range resp.BatchItemFailures {
			failed[f.ItemIdentifier] = true
		}
		var back []string
		for _, r := range ev.Records {
			if failed[r.MessageId] {
				label := "(poison)"
				if m, err := queue.Decode([]byte(r.Body)); err == nil {
					label = m.Label()
				}
				back = append(back, label)
			}
		}
		d.HandedBack = append(d.HandedBack, back)
		if o.loseAck != nil && o.loseAck(n) {
			herr = errors.New("reliability: the answer was lost (invocation timed out after the work)")
		}
		if _, err := w.sqs.Settle(w.queue, ev, resp, herr); err != nil {
			w.t.Fatal(err)
		}
	}
	w.t.Fatal("queue not drained after 200 invocations")
	return d
}

// invoke calls the consumer as the Lambda runtime would, turning a panic
// into a failed invocation (the runtime reports it; the batch is retried).
func (w *world) invoke(ctx context.Context, ev events.SQSEvent) (resp events.SQSEventResponse, err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked, err = true, fmt.Errorf("panic: %v", r)
		}
	}()
	resp, err = w.consumer.Handle(ctx, ev)
	return resp, err, false
}

// tally is the end state of a scenario, each count from its own source.
type tally struct {
	In         int
	Queued     int            // messages the consumer queued itself: a fill, then the tickers again
	Days       int            // day messages done with (the consumer's records)
	Written    int            // tickers with a row of the night's trading day (DynamoDB)
	Rows       map[string]int // rows of that day per ticker
	Permanent  int            // PermanentFailures metric
	Stale      int            // ticker messages acknowledged without a row of the day, the last good row kept (the consumer's records)
	HandedBack int            // queue + dead-letter queue (handed back or dead-lettered)
	Lost, Dup  int
	metrics    map[string]float64
	permLogged map[string]bool // tickers logged as permanent failures
	stale      map[string]bool // tickers whose last outcome is stale
	poisonLogs int
	remaining  []string // tickers dead-lettered
}

// count reads the end state: rows per queued ticker, the consumer's metrics
// and logs, and the queue.
func (w *world) count(in int, tickers []string) tally {
	w.t.Helper()
	tl := tally{In: in, Rows: map[string]int{}, permLogged: map[string]bool{}, stale: map[string]bool{}}
	w.mu.Lock()
	for _, r := range w.outcomes {
		switch {
		case r.Date != w.date: // an earlier night
		case r.Outcome == pipeline.DayDone:
			tl.Days++
			if r.Day != nil && r.Day.Planned > 0 {
				tl.Queued += r.Day.Planned + r.Day.Held
			}
		case r.Outcome == pipeline.Stale:
			tl.Stale++
			tl.stale[r.Ticker] = true
		}
	}
	w.mu.Unlock()
	for _, tk := range tickers {
		n := w.rows(tk)
		tl.Rows[tk] = n
		if n > 0 {
			tl.Written++
			tl.Dup += n - 1
		}
	}
	tl.metrics = emfTotals(w.logs.String())
	tl.Permanent = int(tl.metrics[deploy.PermanentFailures.Name])
	for _, line := range strings.Split(w.logs.String(), "\n") {
		var rec struct {
			Msg    string `json:"msg"`
			Ticker string `json:"ticker"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch {
		case strings.HasPrefix(rec.Msg, "ticker not refreshed: permanent error"):
			tl.permLogged[rec.Ticker] = true
		case rec.Msg == "poison message acknowledged":
			tl.poisonLogs++
		}
	}
	c, dlq := w.sqs.Counts(w.queue), w.sqs.Counts(w.dlq)
	tl.HandedBack = c.Visible + c.InFlight + c.Dead + dlq.Visible
	// Moved by the receive count, then sent by processTicker.
	for _, body := range append(w.sqs.DeadLetters(w.queue), w.sqs.Visible(w.dlq)...) {
		if m, err := queue.Decode([]byte(body)); err == nil {
			tl.remaining = append(tl.remaining, m.Ticker)
		} else {
			tl.remaining = append(tl.remaining, "(poison)")
		}
	}
	tl.Lost = tl.In - tl.Days - tl.Written - tl.Permanent - tl.Stale - tl.HandedBack
	return tl
}

// rows counts the ticker's items of the night's trading day and checks each
// item is keyed by the close of its own trading day.
func (w *world) rows(ticker string) int {
	w.t.Helper()
	out, err := w.db.Query(context.Background(), &dynamodb.QueryInput{
		TableName:                 aws.String(deploy.TickerData.Name(w.stage)),
		KeyConditionExpression:    aws.String("#t = :t"),
		ExpressionAttributeNames:  map[string]string{"#t": deploy.AttrTicker},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberS{Value: ticker}},
	})
	if err != nil {
		w.t.Fatalf("query rows of %s: %v", ticker, err)
	}
	n := 0
	for _, it := range out.Items {
		asOf, _ := it[tickerdb.AttrAsOf].(*types.AttributeValueMemberS)
		ts, _ := it[deploy.AttrTimestamp].(*types.AttributeValueMemberS)
		if asOf == nil || ts == nil {
			w.t.Fatalf("%s: row without asOf or timestamp: %v", ticker, it)
		}
		want, err := marketdata.CloseInstant(asOf.Value)
		if err != nil || want.UTC().Format(time.RFC3339) != ts.Value {
			w.t.Errorf("%s: row timestamp %s is not the close of its trading day %s", ticker, ts.Value, asOf.Value)
		}
		if asOf.Value == w.date {
			n++
		}
	}
	return n
}

// emfTotals sums every EMF document in the logs by metric name.
func emfTotals(logs string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(logs, "\n") {
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

// sleptFor reports whether the client asked to wait d (a Retry-After).
func (w *world) sleptFor(d time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.sleeps {
		if s == d {
			return true
		}
	}
	return false
}

// synthetic answers as fakepolygon does by default (for Handler hooks).
func synthetic(req fakepolygon.Request) fakepolygon.Response {
	bars, err := fakepolygon.SyntheticBars(req.Ticker, req.From, req.To)
	if err != nil {
		return fakepolygon.JSON(400, `{"status":"ERROR","error":"bad range"}`)
	}
	return fakepolygon.JSON(200, string(fakepolygon.Body(req.Ticker, bars, "")))
}

func newStore(db *dynamodb.Client, stage string) *tickerdb.Store {
	return tickerdb.NewStore(db, deploy.TickerData.Name(stage))
}
