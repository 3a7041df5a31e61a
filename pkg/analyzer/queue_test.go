package analyzer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/reservationdb"
	"github.com/zsmseven/backend/pkg/tickerdb"
	"github.com/zsmseven/backend/pkg/xai"
)

// record is an SQS record of the analysis queue carrying m.
func record(t *testing.T, id string, m analysisqueue.Message, receives int) events.SQSMessage {
	t.Helper()
	body, err := m.Encode()
	require.NoError(t, err)
	return events.SQSMessage{MessageId: id, Body: body, EventSource: "aws:sqs",
		Attributes: map[string]string{"ApproximateReceiveCount": fmt.Sprint(receives)}}
}

func msg(portfolio string) analysisqueue.Message {
	return analysisqueue.New(portfolio, "run-1", false, time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC))
}

func failedIDs(r events.SQSEventResponse) []string {
	ids := []string{}
	for _, f := range r.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

// "*" queues one message per portfolio, never analyzed first, then the
// oldest analysis, then by name; force is carried; nothing is analyzed in
// the fan-out invocation itself.
func TestFanOutQueuesOldestFirst(t *testing.T) {
	w := newWorld()
	for _, n := range []string{"Alpha", "Beta", "Gamma", "Delta"} {
		w.ports[n] = w.ports["ZSM Seven"]
	}
	w.ports["Bad\nName"] = w.ports["ZSM Seven"]
	base := w.clock.Now().Add(-48 * time.Hour)
	for name, age := range map[string]time.Duration{"ZSM Seven": 0, "Beta": time.Hour, "Gamma": 2 * time.Hour} {
		require.NoError(t, w.store.Put(context.Background(), analysisdb.Item{Portfolio: name, Timestamp: base.Add(-age), Status: analysisdb.StatusOK}))
	}
	o := w.options(nil)
	o.RunID = func(context.Context) string { return "run-42" }
	res, err := analyzer.New(o).Handle(context.Background(), analyzer.Event{PortfolioName: "*", Force: true})
	require.NoError(t, err)
	// Alpha and Delta never analyzed (by name), then Gamma (2 h older), Beta, ZSM Seven.
	want := []string{"Alpha", "Delta", "Gamma", "Beta", "ZSM Seven"}
	assert.Equal(t, want, w.queue.portfolios())
	assert.Equal(t, want, res.Queued)
	assert.Equal(t, []string{"Bad\nName"}, res.Skipped, "a name the analysis would refuse is not queued to fail five times")
	assert.Equal(t, "run-42", res.RunID)
	for _, m := range w.queue.sent {
		assert.True(t, m.Force)
		assert.Equal(t, "run-42", m.RunID)
	}
	assert.Len(t, w.store.all(), 3, "nothing analyzed in the fan-out")
	snap := w.metrics.Snapshot()
	assert.Equal(t, 5.0, snap[deploy.AnalysesQueued.Name])
	assert.Equal(t, 1.0, snap[deploy.AnalysisSkipped.Name])
}

func TestFanOutList(t *testing.T) {
	w := newWorld()
	w.ports["Alpha"] = w.ports["ZSM Seven"]
	res, err := w.service(nil).Handle(context.Background(), analyzer.Event{PortfolioNames: []string{"ZSM Seven", "Alpha", "ZSM Seven"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"Alpha", "ZSM Seven"}, res.Queued, "each once, in queue order")
	assert.False(t, w.queue.sent[0].Force)
}

// Messages SQS does not accept fail the invocation, naming them, so the
// schedule's retry sends them again.
func TestFanOutReportsUnqueued(t *testing.T) {
	w := newWorld()
	w.ports["Alpha"] = w.ports["ZSM Seven"]
	w.queue.fail = map[string]bool{"Alpha": true}
	res, err := w.service(nil).Handle(context.Background(), analyzer.Event{PortfolioName: "*"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 of 2 portfolios not queued: Alpha")
	assert.Equal(t, []string{"Alpha"}, res.Failed)
	assert.Equal(t, []string{"ZSM Seven"}, res.Queued)
	assert.Equal(t, 1.0, w.metrics.Snapshot()[deploy.AnalysisFailed.Name])
}

func TestFanOutWithoutQueue(t *testing.T) {
	w := newWorld()
	o := w.options(nil)
	o.Queue = nil
	_, err := analyzer.New(o).Handle(context.Background(), analyzer.Event{PortfolioName: "*"})
	assert.ErrorIs(t, err, analyzer.ErrNoQueue)
}

// Each message is one portfolio in its own invocation: analyzed and
// acknowledged; a portfolio with nothing to analyze is acknowledged as
// skipped (counted); a poison message is acknowledged and counted; a
// failure is handed back (retried, then dead-lettered).
func TestHandleQueue(t *testing.T) {
	w := newWorld()
	w.ports["Empty"] = holding{}
	w.ports["Alpha "] = w.ports["ZSM Seven"]
	var seen []analyzer.Outcome
	o := w.options(nil)
	o.Observer = func(oc analyzer.Outcome) { seen = append(seen, oc) }
	svc := analyzer.New(o)
	ev := events.SQSEvent{Records: []events.SQSMessage{
		record(t, "m1", msg("ZSM Seven"), 1),
		record(t, "m2", msg("Empty"), 1),
		record(t, "m3", msg("Nobody"), 1),
		{MessageId: "m4", Body: `{"v":1,"portfolio":"*","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`, EventSource: "aws:sqs"},
		{MessageId: "m5", Body: `not json`, EventSource: "aws:sqs"},
		record(t, "m6", msg("Alpha "), 1),
	}}
	resp, err := svc.HandleQueue(context.Background(), ev)
	require.NoError(t, err)
	assert.Empty(t, failedIDs(resp))
	assert.Empty(t, w.queue.sent, "the queue consumer never sends to its own queue, not even for \"*\"")
	items := w.store.all()
	require.Len(t, items, 2)
	assert.Equal(t, "Alpha ", items[1].Portfolio, "stored under the shared table's exact name")
	snap := w.metrics.Snapshot()
	assert.Equal(t, 2.0, snap[deploy.AnalysesAnalyzed.Name])
	assert.Equal(t, 2.0, snap[deploy.AnalysisSkipped.Name], "Empty and Nobody")
	assert.Equal(t, 2.0, snap[deploy.AnalysisFailed.Name], "the two poison messages")
	require.Len(t, seen, 6)
	assert.Equal(t, analyzer.OutcomeSkipped, seen[1].Status)
	assert.Contains(t, seen[1].Reason, "no valid positions")
	assert.Contains(t, w.logs.String(), "poison analysis message acknowledged")

	// A failure is handed back; on the last receive the log says it goes
	// to the dead-letter queue.
	w.tickers.err = errBoom
	resp, err = svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{
		record(t, "m7", msg("ZSM Seven"), 2), record(t, "m8", msg("Alpha "), 5)}})
	require.NoError(t, err)
	assert.Equal(t, []string{"m7", "m8"}, failedIDs(resp))
	assert.Contains(t, w.logs.String(), "message handed back to the queue")
	assert.Contains(t, w.logs.String(), "the message goes to the dead-letter queue")
	assert.Equal(t, 4.0, w.metrics.Snapshot()[deploy.AnalysisFailed.Name])
}

// A record that arrives with too little of the invocation left is handed
// back unstarted.
func TestHandleQueueNoTimeLeft(t *testing.T) {
	w := newWorld()
	o := w.options(nil)
	o.Now = time.Now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := analyzer.New(o).HandleQueue(ctx, events.SQSEvent{Records: []events.SQSMessage{record(t, "m1", msg("ZSM Seven"), 1)}})
	require.NoError(t, err)
	assert.Equal(t, []string{"m1"}, failedIDs(resp), "less than MinWork (60 s) left")
	assert.Empty(t, w.store.all())
}

// Invoke routes an SQS event to the queue consumer and anything else to
// Handle.
func TestInvokeRoutes(t *testing.T) {
	w := newWorld()
	svc := w.service(nil)
	sqsEvent, err := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{record(t, "m1", msg("ZSM Seven"), 1)}})
	require.NoError(t, err)
	out, err := svc.Invoke(context.Background(), sqsEvent)
	require.NoError(t, err)
	resp, ok := out.(events.SQSEventResponse)
	require.True(t, ok, "an SQS event gets an SQS event response, %T", out)
	assert.Empty(t, resp.BatchItemFailures)

	out, err = svc.Invoke(context.Background(), json.RawMessage(`{"portfolio_name":"ZSM Seven"}`))
	require.NoError(t, err)
	res, ok := out.(analyzer.Result)
	require.True(t, ok)
	assert.Equal(t, analyzer.OutcomeReused, res.Portfolios[0].Status)

	out, err = svc.Invoke(context.Background(), json.RawMessage(`{"Records":[]}`))
	require.NoError(t, err)
	assert.IsType(t, events.SQSEventResponse{}, out)

	_, err = svc.Invoke(context.Background(), json.RawMessage(`{"Records":[{"messageId":"x","eventSource":"aws:kinesis"}]}`))
	assert.ErrorContains(t, err, "not aws:sqs")
	_, err = svc.Invoke(context.Background(), json.RawMessage(`{"portfolio_name":`))
	assert.ErrorContains(t, err, "malformed JSON")
}

// Two runs of the same analysis at once pay once: the second waits for the
// first's reservation and reuses its result.
func TestOverlappingRunsPayOnce(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Slow(fakexai.Answer(good), 300*time.Millisecond))
	o := w.options(xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: fastRetry(), AttemptTimeout: 5 * time.Second}))
	o.Now, o.Sleep, o.WaitPoll, o.MinWork = time.Now, nil, 20*time.Millisecond, time.Second
	w.res.now = time.Now
	svc := analyzer.New(o)
	var wg sync.WaitGroup
	var results [3]analyzer.Result
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var err error
			results[i], err = svc.Handle(ctx, analyzer.Event{})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, srv.Calls(), "exactly one paid call")
	assert.Len(t, w.store.all(), 1)
	var statuses []string
	for _, r := range results {
		statuses = append(statuses, r.Portfolios[0].Status)
		assert.Equal(t, results[0].Portfolios[0].Timestamp, r.Portfolios[0].Timestamp, "all name the one stored analysis")
	}
	assert.ElementsMatch(t, []string{analyzer.OutcomeOK, analyzer.OutcomeReused, analyzer.OutcomeReused}, statuses)
}

// A message delivered again after its analysis was stored pays nothing,
// also when it was forced: a forced run's reservation is keyed by its run
// id, so only a new forced run pays again.
func TestRedeliveryPaysOnce(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Answer(good))
	svc := w.service(client(srv))
	forced := analysisqueue.New("ZSM Seven", "run-7", true, time.Now())
	for i := range 2 {
		resp, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "m", forced, i+1)}})
		require.NoError(t, err)
		assert.Empty(t, resp.BatchItemFailures)
		w.clock.Advance(time.Minute)
	}
	assert.Equal(t, 1, srv.Calls(), "the redelivered forced message reuses")
	another := analysisqueue.New("ZSM Seven", "run-8", true, time.Now())
	_, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "n", another, 1)}})
	require.NoError(t, err)
	assert.Equal(t, 2, srv.Calls(), "a new forced run pays")
	assert.Len(t, w.store.all(), 2)
}

// A reservation whose owner died (its lease ran out) is taken over; one
// still within its lease makes a queued run wait, then hand its message
// back when its own time would run short, without paying.
func TestReservationLeaseAndBusy(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Answer(good))
	o := w.options(client(srv))
	o.Reservations = &holdAll{memReservations: w.res, owner: "dead/1", lease: w.clock.Now().Add(-time.Second)}
	res, err := analyzer.New(o).Handle(context.Background(), analyzer.Event{})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status, "taken over")
	assert.Equal(t, 1, srv.Calls())

	w = newWorld()
	srv = fakexai.New(t, fakexai.Answer(good))
	o = w.options(client(srv))
	o.Reservations = &holdAll{memReservations: w.res, owner: "alive/1", lease: w.clock.Now().Add(time.Hour)}
	start := w.clock.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(5*time.Minute))
	defer cancel()
	resp, err := analyzer.New(o).HandleQueue(ctx, events.SQSEvent{Records: []events.SQSMessage{record(t, "m1", msg("ZSM Seven"), 1)}})
	require.NoError(t, err)
	assert.Equal(t, []string{"m1"}, failedIDs(resp))
	assert.Zero(t, srv.Calls(), "never pays while another run holds the key")
	assert.Contains(t, w.logs.String(), analyzer.ErrBusy.Error())
	waited := w.clock.Now().Sub(start)
	assert.True(t, waited >= 3*time.Minute && waited <= 4*time.Minute, "waited %s: until less than MinWork (60 s) of the 5 minutes was left", waited)
}

// holdAll is a reservations store in which every key starts held, pending,
// by owner until lease.
type holdAll struct {
	*memReservations
	owner string
	lease time.Time
	once  sync.Map
}

func (h *holdAll) Reserve(ctx context.Context, r reservationdb.Reservation) (reservationdb.Reservation, bool, error) {
	if _, loaded := h.once.LoadOrStore(r.Key, true); !loaded {
		h.memReservations.mu.Lock()
		h.memReservations.items[r.Key] = reservationdb.Reservation{Key: r.Key, Owner: h.owner, State: reservationdb.StatePending, LeaseUntil: h.lease}
		h.memReservations.mu.Unlock()
	}
	return h.memReservations.Reserve(ctx, r)
}

// A portfolio of more than 50 positions is rated in batches of at most 50
// plus one portfolio-level call, and stored with exactly one entry per
// position.
func TestLargePortfolioIsBatched(t *testing.T) {
	w := newWorld()
	var pos []portfoliodb.Position
	for i := range 120 {
		sym := fmt.Sprintf("T%03d", i)
		pos = append(pos, portfoliodb.Position{Symbol: sym, Quantity: f(1)})
		w.tickers.rows[sym] = tickerdb.Row{Ticker: sym, Snapshot: indicators.Snapshot{AsOf: lastDay, Price: 10 + float64(i), RSI: f(50), MA50: f(10), Bars: 250}}
	}
	w.ports["Big"] = holding{positions: pos}
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	_, err := w.service(client(srv)).Handle(context.Background(), analyzer.Event{PortfolioName: "Big"})
	require.NoError(t, err)
	assert.Equal(t, 4, srv.Calls(), "3 batches (50, 50, 20) and the portfolio call")
	it := w.store.all()[0]
	assert.Equal(t, analysisdb.StatusOK, it.Status, it.Reason)
	assert.Equal(t, 4, it.Calls)
	require.Len(t, it.Result.Tickers, 120)
	for i, ts := range it.Result.Tickers {
		assert.Equal(t, fmt.Sprintf("T%03d", i), ts.Ticker)
		assert.Equal(t, analysis.SourceModel, ts.Source)
	}
	assert.Len(t, it.Result.TopActions, 3)
	kinds := map[string]int{}
	for _, r := range srv.Requests() {
		kinds[r.Decoded.ResponseFormat.JSONSchema.Name]++
		assert.LessOrEqual(t, r.Decoded.MaxCompletionTokens, 300+250*50)
	}
	assert.Equal(t, map[string]int{analysis.SchemaNameTickers: 3, analysis.SchemaNamePortfolio: 1}, kinds)
}

// One batch that the model cannot answer is rated by the rules analyst;
// the rest keep the model's verdicts, and the item says which part fell
// back.
func TestBatchPartialFallback(t *testing.T) {
	w := newWorld()
	var pos []portfoliodb.Position
	for i := range 60 {
		sym := fmt.Sprintf("T%03d", i)
		pos = append(pos, portfoliodb.Position{Symbol: sym})
		w.tickers.rows[sym] = tickerdb.Row{Ticker: sym, Snapshot: indicators.Snapshot{AsOf: lastDay, Price: 10, RSI: f(50), MA50: f(10), Bars: 250}}
	}
	w.ports["Big"] = holding{positions: pos}
	gen := &fakexai.Generator{}
	srv := fakexai.New(t, fakexai.Generate(gen))
	o := w.options(&breakPart{LLM: client(srv), symbol: "T055"})
	o.BatchParallel = 1
	_, err := analyzer.New(o).Handle(context.Background(), analyzer.Event{PortfolioName: "Big"})
	require.NoError(t, err)
	it := w.store.all()[0]
	assert.Equal(t, analysisdb.StatusFallback, it.Status)
	assert.Contains(t, it.Reason, "positions 51-60 of 60 (T050-T059): answer invalid after repair")
	assert.Equal(t, "grok-4.3", it.Model, "most of it is the model's")
	require.Len(t, it.Result.Tickers, 60)
	assert.Equal(t, analysis.SourceModel, it.Result.Tickers[0].Source)
	assert.Equal(t, analysis.SourceRules, it.Result.Tickers[55].Source)
	assert.Equal(t, 1.0, w.metrics.Snapshot()[deploy.AnalysisFallback.Name])
}

// breakPart answers every call that rates symbol with an invalid answer.
type breakPart struct {
	analyzer.LLM
	symbol string
}

func (b *breakPart) Complete(ctx context.Context, req analysis.Request) (analysis.Completion, error) {
	resp, err := b.LLM.Complete(ctx, req)
	if strings.Contains(string(req.Schema), `"`+b.symbol+`"`) {
		resp.Content = `{"tickers":[]}`
	}
	return resp, err
}
