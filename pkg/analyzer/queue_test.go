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
	"github.com/zsmseven/backend/internal/devstack/memanalysis"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
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
		require.NoError(t, w.analyses.Put(context.Background(), analysis.Record{Portfolio: name, Timestamp: base.Add(-age), Status: analysis.StatusOK}))
	}
	o := w.options(nil)
	o.RunID = func(context.Context) string { return "run-42" }
	res, err := analyzer.New(o).Handle(context.Background(), analyzer.Event{PortfolioName: "*", Force: true})
	require.NoError(t, err)
	// Alpha and Delta never analyzed (by name), then Gamma (2 h older), Beta, ZSM Seven.
	want := []string{"Alpha", "Delta", "Gamma", "Beta", "ZSM Seven"}
	assert.Equal(t, want, w.queue.portfolios())
	assert.Empty(t, w.queue.batches(), "no model: nothing to score")
	assert.Equal(t, want, res.Queued)
	assert.Equal(t, []string{"Bad\nName"}, res.Skipped, "a name the analysis would refuse is not queued to fail five times")
	assert.Equal(t, "run-42", res.RunID)
	for _, m := range w.queue.Sent() {
		assert.True(t, m.Force)
		assert.Equal(t, "run-42", m.RunID)
	}
	assert.Len(t, w.analyses.All(), 3, "nothing analyzed in the fan-out")
	snap := w.metrics.Snapshot()
	assert.Equal(t, 5.0, snap[deploy.AnalysesQueued.Name])
	assert.Equal(t, 1.0, snap[deploy.AnalysisSkipped.Name])
}

// With a model, the fan-out plans the night's unscored tickers into
// batches of at most 40 — each a claim and a pending score per ticker — and
// queues them before the portfolios; a second fan-out of the same night
// plans nothing more.
func TestFanOutPlansTickerBatches(t *testing.T) {
	w := newWorld()
	w.ports = fakePortfolios{}
	for p := range 5 {
		var hs []analyzer.Holding
		for i := range 20 {
			sym := fmt.Sprintf("T%c%c", 'A'+(p*10+i)/26, 'A'+(p*10+i)%26)
			hs = append(hs, analyzer.Holding{Symbol: sym, Quantity: f(1)})
			w.market.set(sym, indicators.Snapshot{AsOf: lastDay, Price: 10, Bars: 250})
		}
		w.ports[fmt.Sprint("P", p)] = holding{positions: hs}
	}
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	svc := w.service(client(srv))
	_, err := svc.Handle(context.Background(), analyzer.Event{PortfolioName: "*"})
	require.NoError(t, err)
	batches := w.queue.batches()
	require.Len(t, batches, 2, "60 distinct tickers: 40 and 20")
	assert.Equal(t, analysisqueue.KindTickers, w.queue.Sent()[0].Kind, "batches first")
	assert.Equal(t, analysisqueue.KindTickers, w.queue.Sent()[1].Kind)
	assert.Len(t, w.queue.portfolios(), 5)
	assert.Zero(t, srv.Calls(), "nothing is paid in the fan-out")
	assert.Equal(t, 2.0, w.metrics.Snapshot()[deploy.TickerBatchesQueued.Name])
	for _, c := range w.ledger.Claims(analysis.ClaimBatch) {
		assert.Equal(t, analysis.StatePlanned, c.State, "left to its message")
		assert.Equal(t, w.clock.Now().Add(analyzer.DefaultPlannedLease), c.LeaseUntil, "a portfolio waits that long for the message")
	}

	// The night's queue, consumed: each batch paid once, then each
	// portfolio reads its scores.
	for i, m := range w.queue.Sent() {
		resp, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, fmt.Sprint("m", i), m, 1)}})
		require.NoError(t, err)
		assert.Empty(t, resp.BatchItemFailures)
	}
	tickers, managers := 0, 0
	for _, r := range srv.Requests() {
		switch r.Decoded.ResponseFormat.JSONSchema.Name {
		case analysis.SchemaTickers:
			tickers++
		case analysis.SchemaManager:
			managers++
		}
	}
	assert.Equal(t, 2, tickers)
	assert.Equal(t, 5, managers)
	for _, it := range w.analyses.All() {
		assert.Equal(t, analysis.StatusOK, it.Status, it.Reason)
	}
	assert.Equal(t, 100.0, w.metrics.Snapshot()[deploy.TickerScoresReused.Name], "every portfolio's 20 tickers read, none paid again")

	w.queue.Reset()
	_, err = svc.Handle(context.Background(), analyzer.Event{PortfolioName: "*"})
	require.NoError(t, err)
	assert.Empty(t, w.queue.batches(), "every ticker of the night is scored")
}

func TestFanOutList(t *testing.T) {
	w := newWorld()
	w.ports["Alpha"] = w.ports["ZSM Seven"]
	res, err := w.service(nil).Handle(context.Background(), analyzer.Event{PortfolioNames: []string{"ZSM Seven", "Alpha", "ZSM Seven"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"Alpha", "ZSM Seven"}, res.Queued, "each once, in queue order")
	assert.False(t, w.queue.Sent()[0].Force)
}

// Messages SQS does not accept fail the invocation, naming them, so the
// schedule's retry sends them again.
func TestFanOutReportsUnqueued(t *testing.T) {
	w := newWorld()
	w.ports["Alpha"] = w.ports["ZSM Seven"]
	w.queue.Fail = map[string]bool{"Alpha": true}
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

// Each message is one job in its own invocation: analyzed and
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
	assert.Empty(t, w.queue.Sent(), "the queue consumer never sends to its own queue, not even for \"*\"")
	items := w.analyses.All()
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
	w.market.err = errBoom
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
	assert.Empty(t, w.analyses.All())
	assert.Equal(t, 1.0, w.metrics.Snapshot()[deploy.AnalysisFailed.Name], "counted as every hand-back")
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
// first's claims and reuses their results.
func TestOverlappingRunsPayOnce(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Slow(fakexai.Generate(&fakexai.Generator{}), 300*time.Millisecond))
	o := w.options(xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: fastRetry(), AttemptTimeout: 5 * time.Second}))
	o.Now, o.Sleep, o.WaitPoll, o.MinWork = time.Now, nil, 20*time.Millisecond, time.Second
	w.ledger.Now = time.Now
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
	asked := map[string]int{}
	for _, r := range srv.Requests() {
		switch r.Decoded.ResponseFormat.JSONSchema.Name {
		case analysis.SchemaManager:
			asked["manager"]++
		default:
			for _, sym := range []string{"AAPL", "MSFT", "NVDA"} {
				if strings.Contains(r.Decoded.Messages[1].Content, `"symbol":"`+sym+`"`) {
					asked[sym]++
				}
			}
		}
	}
	assert.Equal(t, map[string]int{"AAPL": 1, "MSFT": 1, "manager": 1}, asked, "each ticker scored once, the overview written once")
	assert.Zero(t, srv.RepeatedPaid())
	assert.Len(t, w.analyses.All(), 1)
	var statuses []string
	for _, r := range results {
		statuses = append(statuses, r.Portfolios[0].Status)
		assert.Equal(t, results[0].Portfolios[0].Timestamp, r.Portfolios[0].Timestamp, "all name the one stored analysis")
	}
	assert.ElementsMatch(t, []string{analyzer.OutcomeOK, analyzer.OutcomeReused, analyzer.OutcomeReused}, statuses)
}

// A message delivered again after its analysis was stored pays nothing,
// also when it was forced: a forced run's claims and scores are keyed by
// its run id, so only a new forced run pays again.
func TestRedeliveryPaysOnce(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	svc := w.service(client(srv))
	forced := analysisqueue.New("ZSM Seven", "run-7", true, time.Now())
	for i := range 2 {
		resp, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "m", forced, i+1)}})
		require.NoError(t, err)
		assert.Empty(t, resp.BatchItemFailures)
		w.clock.Advance(time.Minute)
	}
	assert.Equal(t, 2, srv.Paid(), "the redelivered forced message reuses")
	another := analysisqueue.New("ZSM Seven", "run-8", true, time.Now())
	_, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "n", another, 1)}})
	require.NoError(t, err)
	assert.Equal(t, 4, srv.Paid(), "a new forced run pays")
	assert.Len(t, w.analyses.All(), 2)
}

// A claim whose owner died (its lease ran out) is taken over; one still
// within its lease makes a queued run wait, then hand its message back
// when its own time would run short, without paying.
func TestClaimLeaseAndBusy(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	o := w.options(client(srv))
	o.Ledger = &holdAll{Ledger: w.ledger, owner: "dead/1", lease: w.clock.Now().Add(-time.Second)}
	res, err := analyzer.New(o).Handle(context.Background(), analyzer.Event{})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status, "taken over")
	assert.Equal(t, 2, srv.Paid())

	w = newWorld()
	srv = fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	o = w.options(client(srv))
	o.Ledger = &holdAll{Ledger: w.ledger, owner: "alive/1", lease: w.clock.Now().Add(time.Hour)}
	start := w.clock.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(5*time.Minute))
	defer cancel()
	resp, err := analyzer.New(o).HandleQueue(ctx, events.SQSEvent{Records: []events.SQSMessage{record(t, "m1", msg("ZSM Seven"), 1)}})
	require.NoError(t, err)
	assert.Equal(t, []string{"m1"}, failedIDs(resp))
	assert.Zero(t, srv.Calls(), "never pays while another run holds the work")
	assert.Contains(t, w.logs.String(), analyzer.ErrBusy.Error())
	waited := w.clock.Now().Sub(start)
	assert.True(t, waited >= 3*time.Minute && waited <= 4*time.Minute, "waited %s: until less than MinWork (60 s) of the 5 minutes was left", waited)
}

// holdAll is a ledger in which every claim starts held, pending, by owner
// until lease.
type holdAll struct {
	*memanalysis.Ledger
	owner string
	lease time.Time
	once  sync.Map
}

func (h *holdAll) Claim(ctx context.Context, c analysis.Claim) (analysis.Claim, bool, error) {
	if _, loaded := h.once.LoadOrStore(c.Key, true); !loaded {
		h.Hold(c, h.owner, h.lease)
	}
	return h.Ledger.Claim(ctx, c)
}

// A run killed after paying — here: every write after the paid answers'
// fails, as in a dying invocation — leaves its answers in the ledger; the
// redelivered message resumes from them and pays nothing again.
func TestAKilledRunResumesWithoutPayingAgain(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	svc := w.service(client(srv))
	w.ledger.SettleErr = errBoom // the ticker scores are never stored
	w.analyses.PutErr = errBoom  // nor the analysis
	resp, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "m", msg("ZSM Seven"), 1)}})
	require.NoError(t, err)
	assert.Equal(t, []string{"m"}, failedIDs(resp), "handed back")
	assert.Equal(t, 1, srv.Paid(), "the ticker batch was paid, its answer kept")

	w.ledger.SettleErr = nil
	w.clock.Advance(time.Minute)
	resp, err = svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "m", msg("ZSM Seven"), 2)}})
	require.NoError(t, err)
	assert.Equal(t, []string{"m"}, failedIDs(resp), "the analysis still cannot be stored")
	assert.Equal(t, 2, srv.Paid(), "the batch resumed from its kept answer; the manager paid once")

	w.analyses.PutErr = nil
	w.clock.Advance(time.Minute)
	resp, err = svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "m", msg("ZSM Seven"), 3)}})
	require.NoError(t, err)
	assert.Empty(t, failedIDs(resp))
	assert.Equal(t, 2, srv.Paid(), "the manager resumed from its kept answer")
	assert.Zero(t, srv.RepeatedPaid())
	assert.Equal(t, analysis.StatusOK, w.analyses.All()[0].Status)
	assert.Equal(t, 2.0, w.metrics.Snapshot()[deploy.LLMAnswersReused.Name])
}

// A paid answer whose save to the ledger fails is still used: the run goes
// on with it.
func TestAFailedSaveKeepsTheAnswerInUse(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	w.ledger.SaveErr = errBoom
	res, err := w.service(client(srv)).Handle(context.Background(), analyzer.Event{})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status)
	assert.Equal(t, 2, srv.Paid())
	assert.Contains(t, w.logs.String(), "paid answer not kept in the ledger")
}

// A deadline in the middle of a portfolio's batches: what was answered is
// kept, the rest released; the next run pays only for the rest.
func TestADeadlineMidwayResumes(t *testing.T) {
	w := newWorld()
	var hs []analyzer.Holding
	for i := range 3 * analysis.TickerBatchSize {
		sym := fmt.Sprintf("T%c%c", 'A'+i/26, 'A'+i%26)
		hs = append(hs, analyzer.Holding{Symbol: sym, Quantity: f(1)})
		w.market.set(sym, indicators.Snapshot{AsOf: lastDay, Price: 10, Bars: 250})
	}
	w.ports["Big"] = holding{positions: hs}
	gen := &fakexai.Generator{}
	srv := fakexai.New(t, fakexai.Generate(gen), fakexai.Slow(fakexai.Generate(gen), time.Minute))
	llm := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: fastRetry(), Reserve: 100 * time.Millisecond})
	o := w.options(llm)
	o.Now, o.BatchParallel, o.Manager = time.Now, 1, deploy.ManagerRules
	w.ledger.Now = time.Now
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := analyzer.New(o).Handle(ctx, analyzer.Event{PortfolioName: "Big"})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeFallback, res.Portfolios[0].Status)
	assert.Equal(t, 1, srv.Paid(), "one batch answered before the deadline")

	srv.Script(fakexai.Generate(gen))
	res, err = analyzer.New(o).Handle(context.Background(), analyzer.Event{PortfolioName: "Big"})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status, "the outage's fallback is not reused")
	assert.Equal(t, 3, srv.Paid(), "the two batches left, once each")
	assert.Zero(t, srv.RepeatedPaid())
}

// A batch message's job: its tickers scored once; a redelivery pays
// nothing.
func TestBatchMessage(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	svc := w.service(client(srv))
	_, err := svc.Handle(context.Background(), analyzer.Event{PortfolioName: "*"})
	require.NoError(t, err)
	batches := w.queue.batches()
	require.Len(t, batches, 1)
	for i := range 2 {
		resp, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "b", batches[0], i+1)}})
		require.NoError(t, err)
		assert.Empty(t, resp.BatchItemFailures)
	}
	assert.Equal(t, 1, srv.Paid())
	for _, sym := range []string{"AAPL", "MSFT"} {
		e := w.ledger.TickerScores(sym)
		require.Len(t, e, 1)
		assert.Equal(t, analysis.StateDone, e[0].State)
	}
	assert.Contains(t, w.logs.String(), "ticker batch done")
	assert.Empty(t, w.analyses.All(), "a batch stores scores, not analyses")
	assert.False(t, strings.Contains(w.logs.String(), "ZSM Seven"), "a batch names no portfolio")
}

// failOne is market data whose row of one symbol cannot be read.
type failOne struct {
	*fakeMarket
	symbol string
}

func (f failOne) Latest(ctx context.Context, sym string) (indicators.Snapshot, bool, error) {
	if sym == f.symbol {
		return indicators.Snapshot{}, false, errBoom
	}
	return f.fakeMarket.Latest(ctx, sym)
}

// A ticker row that cannot be read leaves that ticker out of the night's
// plan, not the whole plan: the other tickers are still planned into one
// batch queued first (the portfolio holding it fails on its own, saying
// why).
func TestFanOutPlansAroundAnUnreadableRow(t *testing.T) {
	w := newWorld()
	w.ports["Other"] = holding{positions: []analyzer.Holding{{Symbol: "TSLA", Quantity: f(1)}}}
	w.market.set("TSLA", indicators.Snapshot{AsOf: lastDay, Price: 400, Bars: 250})
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	o := w.options(client(srv))
	o.MarketData = failOne{fakeMarket: w.market, symbol: "MSFT"}
	_, err := analyzer.New(o).Handle(context.Background(), analyzer.Event{PortfolioName: "*"})
	require.NoError(t, err)
	require.Len(t, w.queue.batches(), 1)
	assert.Len(t, w.ledger.TickerScores("AAPL"), 1)
	assert.Len(t, w.ledger.TickerScores("TSLA"), 1)
	assert.Empty(t, w.ledger.TickerScores("MSFT"), "not planned")
	assert.Contains(t, w.logs.String(), "ticker data not readable: not planned")
}
