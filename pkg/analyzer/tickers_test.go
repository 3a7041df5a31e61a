package analyzer_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/internal/devstack/memanalysis"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/reservationdb"
	"github.com/zsmseven/backend/pkg/xai"
)

// Regression tests of the ticker level's coordination: who runs a batch,
// who waits for it, and what a run resumes from.

// tickerAsks counts, per symbol, the ticker-analyst requests that sent it.
func tickerAsks(srv *fakexai.Server, syms ...string) map[string]int {
	asked := map[string]int{}
	for _, r := range srv.Requests() {
		if r.Decoded.ResponseFormat.JSONSchema.Name != analysis.SchemaTickers {
			continue
		}
		for _, s := range syms {
			if strings.Contains(r.Decoded.Messages[1].Content, `"symbol":"`+s+`"`) {
				asked[s]++
			}
		}
	}
	return asked
}

// crossLedger makes two portfolios' batches overlap so that each holds a
// batch the other needs: P1's batch wins the overlapping tickers below the
// split, P2's the others; the loser of a ticker's entry waits until the
// winner has written it.
type crossLedger struct {
	analyzer.Ledger
	mu      sync.Mutex
	members map[string][]string // batch → member keys
	first   string              // the key of P1's first ticker
	p1wins  map[string]bool
	done    map[string]chan struct{}
}

func (c *crossLedger) Claim(ctx context.Context, cl analysis.Claim) (analysis.Claim, bool, error) {
	if cl.Kind == analysis.ClaimBatch && len(cl.Members) > 0 {
		c.mu.Lock()
		if _, ok := c.members[cl.Key]; !ok {
			c.members[cl.Key] = cl.Members
		}
		c.mu.Unlock()
	}
	return c.Ledger.Claim(ctx, cl)
}

func (c *crossLedger) isP1(batch string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members[batch] {
		if m == c.first {
			return true
		}
	}
	return false
}

func (c *crossLedger) Assign(ctx context.Context, e analysis.ScoreEntry) (bool, error) {
	ch, overlap := c.done[e.Key]
	if !overlap {
		return c.Ledger.Assign(ctx, e)
	}
	if c.isP1(e.Batch) == c.p1wins[e.Key] {
		ok, err := c.Ledger.Assign(ctx, e)
		close(ch)
		return ok, err
	}
	<-ch
	return c.Ledger.Assign(ctx, e)
}

// Two portfolios at once, each holding a batch the other needs (P1 holds
// T05–T07 for P2, P2 holds T08–T09 for P1), one batch at a time: each runs
// what it holds before it waits for the other's, so neither stalls until
// its time runs out (ErrBusy) — every ticker is scored once, both stored.
// In memory, and against dynalite (the deployed ledger).
func TestPortfoliosHoldingEachOthersBatchesDoNotStall(t *testing.T) {
	ledgers := map[string]func(t *testing.T, w *world) analyzer.Ledger{
		"memory": func(_ *testing.T, w *world) analyzer.Ledger { w.ledger.Now = time.Now; return w.ledger },
		"dynalite": func(t *testing.T, _ *world) analyzer.Ledger {
			env := dynalitetest.New(t, deploy.AnalysisReservations)
			return reservationdb.New(env.Client, deploy.AnalysisReservations.Name(env.Stage))
		},
	}
	for name, ledger := range ledgers {
		t.Run(name, func(t *testing.T) {
			for round := range 3 {
				crossWait(t, round, ledger)
			}
		})
	}
}

func crossWait(t *testing.T, round int, ledger func(t *testing.T, w *world) analyzer.Ledger) {
	w := newWorld()
	w.ports = fakePortfolios{}
	var syms []string
	for i := range 15 {
		sym := fmt.Sprintf("T%c%c", 'A'+i/26, 'A'+i%26)
		syms = append(syms, sym)
		w.market.set(sym, indicators.Snapshot{AsOf: lastDay, Price: 10, Bars: 250})
	}
	hold := func(ss []string) holding {
		var hs []analyzer.Holding
		for _, s := range ss {
			hs = append(hs, analyzer.Holding{Symbol: s, Quantity: f(1)})
		}
		return holding{positions: hs}
	}
	w.ports["P1"], w.ports["P2"] = hold(syms[:10]), hold(syms[5:])
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	llm := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: fastRetry(), AttemptTimeout: 2 * time.Second})
	key := func(s string) string {
		data, err := analysis.EncodeTicker(s, indicators.Snapshot{AsOf: lastDay, Price: 10, Bars: 250})
		require.NoError(t, err)
		return analysis.TickerKey{Symbol: s, AsOf: lastDay, Model: llm.Model(), Data: data}.String()
	}
	cl := &crossLedger{Ledger: ledger(t, w), members: map[string][]string{}, first: key(syms[0]), p1wins: map[string]bool{}, done: map[string]chan struct{}{}}
	for i, s := range syms[5:10] {
		cl.p1wins[key(s)] = i < 3
		cl.done[key(s)] = make(chan struct{})
	}
	o := w.options(llm)
	o.Ledger = cl
	o.Now, o.Sleep, o.WaitPoll, o.MinWork, o.BatchParallel = time.Now, nil, 20*time.Millisecond, time.Second, 1
	o.Manager = deploy.ManagerRules
	svc := analyzer.New(o)
	var wg sync.WaitGroup
	res := make([]analyzer.Result, 2)
	errs := make([]error, 2)
	for i, p := range []string{"P1", "P2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			res[i], errs[i] = svc.Handle(ctx, analyzer.Event{PortfolioName: p})
		}()
	}
	wg.Wait()
	for i := range 2 {
		require.NoError(t, errs[i], "round %d", round)
		assert.Equal(t, analyzer.OutcomeOK, res[i].Portfolios[0].Status, "round %d: %s", round, res[i].Portfolios[0].Reason)
	}
	asked := tickerAsks(srv, syms...)
	assert.Len(t, asked, 15, "round %d", round)
	for s, n := range asked {
		assert.Equal(t, 1, n, "round %d: %s asked once", round, s)
	}
	assert.Zero(t, srv.RepeatedPaid())
}

// slowPlan holds the fan-out's Assign of one ticker until released: the
// fan-out is still planning a batch whose claim is written and whose other
// entries are assigned.
type slowPlan struct {
	*memanalysis.Ledger
	ticker   string
	assigned chan struct{} // closed when another ticker's entry is in
	release  chan struct{}
	once     sync.Once
}

func (s *slowPlan) Assign(ctx context.Context, e analysis.ScoreEntry) (bool, error) {
	if e.Ticker == s.ticker {
		<-s.release
		return s.Ledger.Assign(ctx, e)
	}
	ok, err := s.Ledger.Assign(ctx, e)
	s.once.Do(func() { close(s.assigned) })
	return ok, err
}

// A portfolio run while the fan-out is still planning a batch it needs
// (AAPL's entry written, MSFT's not yet) waits for the planned batch — its
// lease is fresh — and, its clock past the plan's lease, runs what is
// assigned; the batch is then released, not completed, because MSFT is not
// settled: the batch's message scores MSFT, and the night ends with every
// ticker scored by the model once, no portfolio falling back.
func TestAPortfolioDuringTheFanOutsPlanStrandsNoTicker(t *testing.T) {
	w := newWorld()
	w.ports = fakePortfolios{
		"A": holding{positions: []analyzer.Holding{{Symbol: "AAPL", Quantity: f(1)}, {Symbol: "MSFT", Quantity: f(1)}}},
		"B": holding{positions: []analyzer.Holding{{Symbol: "AAPL", Quantity: f(1)}}},
	}
	w.market.set("MSFT", indicators.Snapshot{AsOf: lastDay, Price: 480, RSI: f(75), MA50: f(500), Bars: 250})
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	sp := &slowPlan{Ledger: w.ledger, ticker: "MSFT", assigned: make(chan struct{}), release: make(chan struct{})}
	o := w.options(client(srv))
	o.Ledger = sp
	o.Manager = deploy.ManagerRules
	svc := analyzer.New(o)

	done := make(chan error)
	go func() {
		_, err := svc.Handle(context.Background(), analyzer.Event{PortfolioNames: []string{"A", "B"}})
		done <- err
	}()
	<-sp.assigned
	// A run of B at that moment (a manual run, a message of an earlier
	// fan-out) needs AAPL.
	start := w.clock.Now()
	res, err := svc.Handle(context.Background(), analyzer.Event{PortfolioName: "B"})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status)
	assert.GreaterOrEqual(t, w.clock.Now().Sub(start), analyzer.DefaultPlannedLease, "B waited for the batch's message first")
	close(sp.release)
	require.NoError(t, <-done)
	for _, c := range w.ledger.Claims(analysis.ClaimBatch) {
		assert.Equal(t, analysis.StatePending, c.State, "released: MSFT was not settled when B ran it")
	}
	// The night goes on: the batch's message, then A's and B's.
	for i, m := range w.queue.Sent() {
		resp, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, fmt.Sprint("m", i), m, 1)}})
		require.NoError(t, err)
		assert.Empty(t, resp.BatchItemFailures, m.Label())
	}
	for _, sym := range []string{"AAPL", "MSFT"} {
		e := w.ledger.TickerScores(sym)
		require.Len(t, e, 1)
		assert.Equal(t, analysis.StateDone, e[0].State, sym)
		assert.Equal(t, analysis.SourceModel, e[0].Verdict.Source, sym)
	}
	for _, c := range w.ledger.Claims(analysis.ClaimBatch) {
		assert.Equal(t, analysis.StateDone, c.State, "complete once every member is settled")
	}
	for _, it := range w.analyses.All() {
		assert.Equal(t, analysis.StatusOK, it.Status, "%s: %s", it.Portfolio, it.Reason)
	}
	assert.Equal(t, map[string]int{"AAPL": 1, "MSFT": 1}, tickerAsks(srv, "AAPL", "MSFT"))
	assert.Zero(t, srv.RepeatedPaid())
}

// corruptData writes one ticker's entry with data that is not the
// ticker's (not in the canonical form: a damaged item).
type corruptData struct {
	*memanalysis.Ledger
	ticker string
}

func (c *corruptData) Assign(ctx context.Context, e analysis.ScoreEntry) (bool, error) {
	if e.Ticker == c.ticker {
		e.Data = []byte(strings.Replace(string(e.Data), `"price":`, `"price": `, 1))
	}
	return c.Ledger.Assign(ctx, e)
}

// A ticker whose entry's data is not valid is never sent to the model: its
// batch scores the others and is released, not completed; the portfolio
// that needs it plans it anew with its own data, and it is scored.
func TestATickerWhoseLedgerDataIsNotValidIsPlannedAnew(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	o := w.options(client(srv))
	o.Ledger = &corruptData{Ledger: w.ledger, ticker: "MSFT"}
	o.Manager = deploy.ManagerRules
	svc := analyzer.New(o)
	_, err := svc.Handle(context.Background(), analyzer.Event{PortfolioName: "*"})
	require.NoError(t, err)
	for i, m := range w.queue.Sent() {
		resp, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, fmt.Sprint("m", i), m, 1)}})
		require.NoError(t, err)
		assert.Empty(t, resp.BatchItemFailures)
	}
	assert.Contains(t, w.logs.String(), "ticker data in the ledger not valid")
	assert.Contains(t, w.logs.String(), "planned anew")
	items := w.analyses.All()
	require.Len(t, items, 1)
	assert.Equal(t, analysis.StatusOK, items[0].Status, items[0].Reason)
	assert.Equal(t, map[string]int{"AAPL": 1, "MSFT": 1}, tickerAsks(srv, "AAPL", "MSFT"), "the damaged data never sent")
	for _, r := range srv.Requests() {
		assert.NotContains(t, r.Decoded.Messages[1].Content, `"price": `)
	}
}

// An entry left pending in a batch that is done (stranded: a batch run
// before its entry was assigned, by code before this fix) is planned anew
// by the first portfolio that needs it, not given the rules' verdict as if
// the model had failed.
func TestAPendingScoreOfADoneBatchIsPlannedAnew(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	svc := w.rulesManager(client(srv))
	_, err := svc.Handle(context.Background(), analyzer.Event{PortfolioName: "*"})
	require.NoError(t, err)
	batches := w.ledger.Claims(analysis.ClaimBatch)
	require.Len(t, batches, 1)
	// The batch completed by a run that scored none of its entries.
	ctx := context.Background()
	got, won, err := w.ledger.Claim(ctx, analysis.Claim{Key: batches[0].Key, Kind: analysis.ClaimBatch, Owner: "old/1", Queued: true,
		LeaseUntil: w.clock.Now().Add(time.Minute)})
	require.NoError(t, err)
	require.True(t, won)
	got.Version++
	require.NoError(t, w.ledger.Complete(ctx, got))

	res, err := svc.Handle(ctx, analyzer.Event{})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status, res.Portfolios[0].Reason)
	for _, sym := range []string{"AAPL", "MSFT"} {
		e := w.ledger.TickerScores(sym)
		require.Len(t, e, 1)
		assert.Equal(t, analysis.StateDone, e[0].State)
		assert.NotEqual(t, batches[0].Key, e[0].Batch, "scored by the batch that planned it anew")
	}
	assert.Contains(t, w.logs.String(), "planned anew")
	assert.Equal(t, 1, srv.Paid())
}

// settleOnce fails the first Settle of one ticker (a throttled PutItem
// whose retries ran out).
type settleOnce struct {
	*memanalysis.Ledger
	ticker string
	mu     sync.Mutex
	failed bool
}

func (s *settleOnce) Settle(ctx context.Context, e analysis.ScoreEntry) error {
	s.mu.Lock()
	fail := e.Ticker == s.ticker && !s.failed
	s.failed = s.failed || fail
	s.mu.Unlock()
	if fail {
		return errBoom
	}
	return s.Ledger.Settle(ctx, e)
}

// A batch whose answer scored every ticker, but whose scores were stored
// only in part (MSFT's write failed), is handed back; the redelivery takes
// MSFT's score from the kept answer — by symbol, though the request for
// MSFT alone would differ — and pays nothing again.
func TestAPartlyStoredBatchResumesTickerByTicker(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	o := w.options(client(srv))
	o.Ledger = &settleOnce{Ledger: w.ledger, ticker: "MSFT"}
	o.Manager = deploy.ManagerRules
	svc := analyzer.New(o)
	var handedBack [][]string
	for i := range 2 {
		resp, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "m", msg("ZSM Seven"), i+1)}})
		require.NoError(t, err)
		handedBack = append(handedBack, failedIDs(resp))
	}
	assert.Equal(t, [][]string{{"m"}, {}}, handedBack)
	assert.Equal(t, map[string]int{"AAPL": 1, "MSFT": 1}, tickerAsks(srv, "AAPL", "MSFT"))
	assert.Equal(t, 1, srv.Paid())
	assert.Zero(t, srv.TickersPaidAgain())
	assert.Equal(t, 1.0, w.metrics.Snapshot()[deploy.LLMAnswersReused.Name])
	items := w.analyses.All()
	require.Len(t, items, 1)
	assert.Equal(t, analysis.StatusOK, items[0].Status, items[0].Reason)
	assert.Equal(t, analysis.SourceModel, items[0].Result.Tickers[1].Source, "MSFT from the kept answer")
}

// A batch whose claim holds an answer and its repair's, and still has a
// ticker without a valid score (their scores stored but that one's, then
// the run died), gets the rules' score for it, final: no third answer is
// ever paid for a claim.
func TestAClaimHoldsAtMostTwoAnswers(t *testing.T) {
	w := newWorld()
	bad := tickersJSON(map[string]int{"AAPL": 70, "MSFT": 150})
	srv := fakexai.New(t, fakexai.Answer(bad), fakexai.Answer(bad), fakexai.Generate(&fakexai.Generator{}))
	o := w.options(client(srv))
	o.Ledger = &settleOnce{Ledger: w.ledger, ticker: "MSFT"}
	o.Manager = deploy.ManagerRules
	svc := analyzer.New(o)
	for i := range 2 {
		_, err := svc.HandleQueue(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(t, "m", msg("ZSM Seven"), i+1)}})
		require.NoError(t, err)
	}
	assert.Equal(t, 2, srv.Paid(), "an answer and its repair, then nothing more")
	e := w.ledger.TickerScores("MSFT")
	require.Len(t, e, 1)
	assert.Equal(t, analysis.StateDone, e[0].State)
	assert.Equal(t, analysis.SourceRules, e[0].Verdict.Source)
	assert.Contains(t, e[0].Reason, `score must be an integer from 0 to 100, got "150"`)
	for _, c := range w.ledger.Claims(analysis.ClaimBatch) {
		assert.Len(t, c.Answers, analysis.MaxAnswersPerClaim)
	}
}

// A portfolio that needs a batch the fan-out planned moments ago waits for
// the batch's message rather than run the batch in its own time: the
// message comes, runs it, and the portfolio reads the scores.
func TestAPortfolioWaitsForAFreshlyPlannedBatch(t *testing.T) {
	w := newWorld()
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	o := w.options(client(srv))
	o.Manager = deploy.ManagerRules
	var svc *analyzer.Service
	var once sync.Once
	var batchResp events.SQSEventResponse
	o.Sleep = func(ctx context.Context, d time.Duration) error {
		// The batch's message arrives while the portfolio waits.
		once.Do(func() {
			var err error
			batchResp, err = svc.HandleQueue(ctx, events.SQSEvent{Records: []events.SQSMessage{record(t, "b", w.queue.batches()[0], 1)}})
			require.NoError(t, err)
		})
		return w.clock.Sleep(ctx, d)
	}
	svc = analyzer.New(o)
	start := w.clock.Now()
	_, err := svc.Handle(context.Background(), analyzer.Event{PortfolioName: "*"})
	require.NoError(t, err)
	res, err := svc.Handle(context.Background(), analyzer.Event{PortfolioName: "ZSM Seven"})
	require.NoError(t, err)
	assert.Empty(t, batchResp.BatchItemFailures)
	assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status)
	assert.Zero(t, res.Portfolios[0].Calls, "the batch's message paid for the scores")
	assert.Less(t, w.clock.Now().Sub(start), analyzer.DefaultPlannedLease, "waited for the message, not the plan's lease")
	assert.Contains(t, w.logs.String(), "ticker batch done")
	assert.Equal(t, 1, srv.Paid())
}

// Two portfolios with identical holdings give the manager identical inputs
// (no name reaches it): one overview is paid, and both store it; a forced
// run pays for its own.
func TestIdenticalPortfoliosShareOneOverview(t *testing.T) {
	w := newWorld()
	w.ports["Twin"] = w.ports["ZSM Seven"]
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	svc := w.service(client(srv))
	for _, p := range []string{"ZSM Seven", "Twin"} {
		res, err := svc.Handle(context.Background(), analyzer.Event{PortfolioName: p})
		require.NoError(t, err)
		assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status)
	}
	managers := 0
	for _, r := range srv.Requests() {
		if r.Decoded.ResponseFormat.JSONSchema.Name == analysis.SchemaManager {
			managers++
		}
	}
	assert.Equal(t, 1, managers, "one paid overview for both")
	assert.Equal(t, 2, srv.Paid())
	assert.Zero(t, srv.RepeatedPaid())
	items := w.analyses.All()
	require.Len(t, items, 2)
	assert.Equal(t, items[0].Result.Summary, items[1].Result.Summary)
	assert.Equal(t, items[0].InputHash, items[1].InputHash)
	assert.Equal(t, 1.0, w.metrics.Snapshot()[deploy.LLMAnswersReused.Name], "the twin's overview read from the ledger")

	w.clock.Advance(time.Minute)
	_, err := svc.Handle(context.Background(), analyzer.Event{PortfolioName: "Twin", Force: true})
	require.NoError(t, err)
	assert.Equal(t, 4, srv.Paid(), "a forced run scores and judges again")
}
