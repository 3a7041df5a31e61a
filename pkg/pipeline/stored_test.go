package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// The nights of the stored history (raw bars, a ledger applied on read, a
// window kept complete): each a day message and its tickers' messages, and
// the fill messages the day message queues, through the real Polygon client
// against the local Polygon (whose clock decides what is published) and the
// real stores on dynalite. Most tests keep a window of testSessions sessions
// so that a cold fill is short; TestColdFillThenWarmNights keeps the
// indicators' 253.

const (
	storedKey    = "pk-stored-history-0123456789"
	testSessions = 30
)

// testMarket is the whole market of the local Polygon's grouped answers
// (besides every ticker a test holds): a ticker held later has its history
// already.
var testMarket = []string{"AAPL", "BRK.B", "MSFT", "NVDA"}

// nights is one test's service and its FIFO queue.
type nights struct {
	t      *testing.T
	clock  *fakeclock.Clock
	srv    *fakepolygon.Server
	bars   *bardb.Store
	rows   *tickerdb.Store
	p      *pipeline.ProcessTicker
	logs   *bytes.Buffer
	emf    *bytes.Buffer
	key    *switchKey
	seen   int // server requests already counted by calls
	run    int
	record []pipeline.Record
	mu     sync.Mutex
	queue  []queue.Message // what processTicker queued (the fill), not yet delivered
	held   map[string]bool // every ticker a night held: in the grouped answers
}

// switchKey is a key source whose key a test can rotate; Refresh counts
// re-reads and applies the next key.
type switchKey struct {
	mu         sync.Mutex
	key, next  string
	refreshes  int
	refreshErr error
}

func (k *switchKey) get(context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.key, nil
}

func (k *switchKey) refresh(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refreshes++
	if k.refreshErr != nil {
		return k.refreshErr
	}
	if k.next != "" {
		k.key = k.next
	}
	return nil
}

// Publish queues msgs at the tail of the test's queue, as SQS does.
func (n *nights) Publish(_ context.Context, msgs []queue.Message) (queue.Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.queue = append(n.queue, msgs...)
	return queue.Result{Queued: len(msgs), Batches: (len(msgs) + 9) / 10}, nil
}

// nightOf is 21:30 New York on trading day d.
func nightOf(t *testing.T, d string) time.Time {
	t.Helper()
	c, err := marketdata.CloseInstant(d)
	if err != nil {
		t.Fatal(err)
	}
	return c.Add(5*time.Hour + 30*time.Minute)
}

func newNights(t *testing.T, first string, sessions int, o fakepolygon.Options) *nights {
	t.Helper()
	env := dynalitetest.New(t, deploy.TickerData, deploy.DailyBars)
	n := &nights{t: t, clock: fakeclock.New(nightOf(t, first)), logs: &bytes.Buffer{}, emf: &bytes.Buffer{}, key: &switchKey{key: storedKey},
		held: map[string]bool{}}
	// The grouped answers carry the whole market: here, testMarket and
	// every ticker held.
	o.Key, o.Now, o.UniverseFunc = storedKey, n.clock.Now, n.universe
	if o.Universe == nil {
		o.Universe = testMarket
	}
	n.srv = fakepolygon.New(t, o)
	client, err := polygon.New(polygon.Options{BaseURL: n.srv.URL, APIKey: n.key.get,
		Retry: retry.Policy{Attempts: 2, Sleep: func(context.Context, time.Duration) error { return nil }}})
	if err != nil {
		t.Fatal(err)
	}
	n.bars = bardb.NewStore(env.Client, deploy.DailyBars.Name(env.Stage))
	n.rows = tickerdb.NewStore(env.Client, deploy.TickerData.Name(env.Stage))
	n.p = &pipeline.ProcessTicker{Market: client, Rows: processticker.Rows(n.rows), History: n.bars, Publisher: n, Source: "polygon",
		Sessions: sessions, RefreshKey: n.key.refresh, Metrics: metrics.New(n.emf, "test"), Logger: logging.New(n.logs, slog.LevelDebug),
		Now: n.clock.Now, Observer: func(r pipeline.Record) { n.record = append(n.record, r) }}
	return n
}

// night queues what processTickers queues on trading day d (a day message
// and one message per ticker) and drains the queue; it returns the
// handed-back message ids.
func (n *nights) night(d string, tickers ...string) []string {
	n.t.Helper()
	n.clock.Set(nightOf(n.t, d))
	return n.deliver(n.messages(d, tickers...))
}

func (n *nights) universe() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.held))
}

func (n *nights) messages(d string, tickers ...string) []queue.Message {
	n.mu.Lock()
	for _, t := range tickers {
		n.held[t] = true
	}
	n.mu.Unlock()
	n.run++
	runID := fmt.Sprint("run-", n.run)
	held := slices.Sorted(slices.Values(tickers))
	msgs := []queue.Message{queue.NewDay(d, held, "tickers", 1, 1, runID, n.clock.Now())}
	for _, t := range held {
		msgs = append(msgs, queue.NewTicker(t, d, runID, n.clock.Now()))
	}
	return msgs
}

// deliver queues msgs and hands the queue to processTicker in batches of
// 10, as the FIFO event source does, until it is empty (what processTicker
// queues joins the tail); handed-back records are returned, not delivered
// again.
func (n *nights) deliver(msgs []queue.Message) []string {
	n.t.Helper()
	n.mu.Lock()
	n.queue = append(n.queue, msgs...)
	n.mu.Unlock()
	var back []string
	for i := 0; ; i++ {
		n.mu.Lock()
		batch := n.queue[:min(10, len(n.queue))]
		n.queue = n.queue[len(batch):]
		n.mu.Unlock()
		if len(batch) == 0 {
			return back
		}
		if i > 2000 {
			n.t.Fatalf("the queue does not empty: %v", batch)
		}
		var ev events.SQSEvent
		for j, m := range batch {
			body, err := m.Encode()
			if err != nil {
				n.t.Fatal(err)
			}
			id := fmt.Sprintf("r%d-%d-%d", n.run, i, j)
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: id, Body: body, ReceiptHandle: "rh-" + id,
				EventSourceARN: fifoARN, Attributes: map[string]string{"MessageGroupId": "tickers"}})
		}
		resp, err := n.p.Handle(context.Background(), ev)
		if err != nil {
			n.t.Fatal(err)
		}
		back = append(back, failedIDs(resp)...)
	}
}

// calls returns the requests the local Polygon received since the last
// call, as "grouped DATE", "splits" or the ticker.
func (n *nights) calls() []string {
	reqs := n.srv.Requests()
	var out []string
	for _, r := range reqs[n.seen:] {
		switch r.Kind {
		case fakepolygon.KindAggregates:
			out = append(out, r.Ticker)
		case fakepolygon.KindGrouped:
			out = append(out, "grouped "+r.Date)
		default:
			out = append(out, r.Kind)
		}
	}
	n.seen = len(reqs)
	return out
}

// metric sums a metric over every EMF document written so far.
func (n *nights) metric(name string) float64 {
	var sum float64
	for _, line := range strings.Split(n.emf.String(), "\n") {
		var doc map[string]any
		if line == "" || json.Unmarshal([]byte(line), &doc) != nil {
			continue
		}
		if v, ok := doc[name].(float64); ok {
			sum += v
		}
	}
	return sum
}

// window is the test's window of sessions ending on d.
func (n *nights) window(d string) []string {
	s := n.p.Sessions
	if s == 0 {
		s = indicators.Lookback
	}
	return coverage.Window(marketdata.NYSE(), d, s)
}

// reference is what the row of ticker on d must hold: indicators computed on
// the bars the local Polygon serves split-adjusted as of now (per ticker,
// adjusted=true) for the window ending on d, from its first session or from.
func (n *nights) reference(ticker, d, from string) indicators.Snapshot {
	n.t.Helper()
	return n.referenceOver(ticker, max(n.window(d)[0], from), d)
}

// referenceOver is what the row of ticker on d must hold when its window
// starts on from (the rule calendar's window does not hold when a closure
// was learnt).
func (n *nights) referenceOver(ticker, from, d string) indicators.Snapshot {
	n.t.Helper()
	wire, err := n.srv.Bars(ticker, from, d)
	if err != nil {
		n.t.Fatal(err)
	}
	var bars []marketdata.Bar
	for _, b := range wire {
		bars = append(bars, marketdata.Bar{Date: marketdata.TradingDate(b.T), Start: time.UnixMilli(b.T), Open: b.O, High: b.H, Low: b.L, Close: b.C, Volume: b.V})
	}
	want, err := indicators.Compute(bars)
	if err != nil {
		n.t.Fatal(err)
	}
	return want
}

// checkRow asserts ticker's latest row is the complete row of d and that
// its price and every indicator equal, to 1e-6, the reference.
func (n *nights) checkRow(ticker, d string) {
	n.t.Helper()
	n.checkRowFrom(ticker, d, "")
}

func (n *nights) checkRowFrom(ticker, d, from string) {
	n.t.Helper()
	row, ok, err := n.rows.Latest(context.Background(), ticker)
	if err != nil || !ok || row.AsOf != d || row.Partial {
		n.t.Fatalf("%s: latest row %+v (%v, %v), want the complete one of %s", ticker, row, ok, err, d)
	}
	if why := differs(row.Snapshot, n.reference(ticker, d, from)); why != "" {
		n.t.Errorf("%s on %s: %s", ticker, d, why)
	}
}

// differs says how got differs from want (to 1e-6), or "".
func differs(got, want indicators.Snapshot) string {
	if got.Bars != want.Bars || math.Abs(got.Price-want.Price) > 1e-6 {
		return fmt.Sprintf("%d bars, price %v; want %d and %v", got.Bars, got.Price, want.Bars, want.Price)
	}
	for _, f := range indicators.Fields {
		g, w := f.Get(got), f.Get(want)
		switch {
		case (g == nil) != (w == nil):
			return fmt.Sprintf("%s = %v, want %v", f.Name, g, w)
		case g != nil && math.Abs(*g-*w) > 1e-6:
			return fmt.Sprintf("%s = %v, want %v", f.Name, *g, *w)
		}
	}
	return ""
}

func (n *nights) outcome(ticker string, o pipeline.Outcome) bool {
	for _, r := range n.record {
		if r.Ticker == ticker && r.Outcome == o {
			return true
		}
	}
	return false
}

// grouped n times for the dates of fills of a window, latest first.
func fills(dates []string) []string {
	var out []string
	for i := len(dates) - 1; i >= 0; i-- {
		out = append(out, "grouped "+dates[i])
	}
	return out
}

// A cold store of the indicators' whole window: the day, the splits of the
// window, then one grouped call per missing session as fill messages behind
// the tickers (254 calls in all); the first rows are partial (an indicator
// whose history is missing is absent, never zero), the tickers' second
// messages after the fill write them complete, equal to the reference. Then
// a warm night is three calls whatever the number of tickers: the day, the
// session before it once more (revised after its close), the splits.
func TestColdFillThenWarmNights(t *testing.T) {
	n := newNights(t, "2026-11-23", 0, fakepolygon.Options{})
	held := []string{"AAPL", "BRK.B", "MSFT"}
	if back := n.night("2026-11-23", held...); len(back) != 0 {
		t.Fatalf("handed back %v", back)
	}
	w := n.window("2026-11-23")
	want := append([]string{"grouped 2026-11-23", "splits"}, fills(w[:len(w)-1])...)
	if got := n.calls(); !slices.Equal(got, want) || len(got) != 254 {
		t.Errorf("cold night: %d calls %v…, want %d", len(got), got[:min(5, len(got))], len(want))
	}
	first := n.record[slices.IndexFunc(n.record, func(r pipeline.Record) bool { return r.Ticker == "AAPL" })]
	if first.Outcome != pipeline.Stored || !first.Row.Partial || first.Row.RSI != nil || first.Row.MA50 != nil || first.Row.Price == 0 {
		t.Errorf("AAPL's first row %+v: want partial, the price alone", first.Row)
	}
	for _, tk := range held {
		n.checkRow(tk, "2026-11-23")
	}
	if n.metric(deploy.SessionsFilled.Name) != 252 || n.metric(deploy.TickersBackfilled.Name) != 0 {
		t.Errorf("SessionsFilled %v TickersBackfilled %v", n.metric(deploy.SessionsFilled.Name), n.metric(deploy.TickersBackfilled.Name))
	}
	for _, d := range []string{"2026-11-24", "2026-11-25", "2026-11-27"} {
		prev := marketdata.PreviousTradingDay(d)
		if back := n.night(d, held...); len(back) != 0 {
			t.Fatalf("%s: handed back %v", d, back)
		}
		if got := n.calls(); !slices.Equal(got, []string{"grouped " + d, "grouped " + prev, "splits"}) {
			t.Errorf("%s: warm night calls %v", d, got)
		}
		for _, tk := range held {
			n.checkRow(tk, d)
		}
	}
	if st, ok, _ := n.bars.Session(context.Background(), "2026-11-25"); !ok || st.Status != coverage.Stored || !st.Final || st.Bars != len(testMarket) || st.Rows != len(testMarket)+4 {
		t.Errorf("session 2026-11-25 %+v", st)
	}
}

// A night after k missed nights costs the three calls of a warm night and
// one per missed session.
func TestMissedNightsCostOneCallEach(t *testing.T) {
	n := newNights(t, "2026-11-16", testSessions, fakepolygon.Options{})
	n.night("2026-11-16", "AAPL", "MSFT")
	n.calls()
	n.night("2026-11-25", "AAPL", "MSFT") // 17, 18, 19, 20, 23, 24 missed
	want := []string{"grouped 2026-11-25", "grouped 2026-11-16", "splits",
		"grouped 2026-11-24", "grouped 2026-11-23", "grouped 2026-11-20", "grouped 2026-11-19", "grouped 2026-11-18", "grouped 2026-11-17"}
	if got := n.calls(); !slices.Equal(got, want) {
		t.Errorf("calls %v\nwant %v", got, want)
	}
	n.checkRow("AAPL", "2026-11-25")
	n.checkRow("MSFT", "2026-11-25")
}

func TestRedeliveryCallsNothing(t *testing.T) {
	n := newNights(t, "2026-11-24", testSessions, fakepolygon.Options{})
	msgs := n.messages("2026-11-24", "AAPL", "MSFT")
	n.deliver(msgs)
	n.calls()
	puts := n.metric(deploy.TickersProcessed.Name)
	// The whole batch again, the day message included.
	if back := n.deliver(msgs); len(back) != 0 {
		t.Fatalf("handed back %v", back)
	}
	if got := n.calls(); len(got) != 0 {
		t.Errorf("a redelivered batch called %v", got)
	}
	if n.metric(deploy.TickersProcessed.Name) != puts || n.metric(deploy.TickersCurrent.Name) != 2 {
		t.Errorf("rows written %v (was %v), current %v", n.metric(deploy.TickersProcessed.Name), puts, n.metric(deploy.TickersCurrent.Name))
	}
}

func TestDayNotPublishedKeepsTheLastGoodRowUntilTheCatchUp(t *testing.T) {
	// Published 6 h after the close: at 21:30 not yet, at 23:30 it is.
	n := newNights(t, "2026-11-23", testSessions, fakepolygon.Options{PublishDelay: 6 * time.Hour})
	n.clock.Set(nightOf(t, "2026-11-23").Add(3 * time.Hour)) // 00:30: the 23rd is published
	n.deliver(n.messages("2026-11-23", "AAPL", "MSFT"))
	n.calls()
	n.record = nil
	if back := n.night("2026-11-24", "AAPL", "MSFT"); len(back) != 0 {
		t.Fatalf("handed back %v", back)
	}
	// The day answers resultsCount 0: no ticker call, rows kept; the day
	// before, fetched at 00:30, is fetched once more; the splits checked.
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-24", "grouped 2026-11-23", "splits"}) {
		t.Errorf("calls %v", got)
	}
	if !n.outcome("AAPL", pipeline.Stale) || !n.outcome("MSFT", pipeline.Stale) || n.metric(deploy.GroupedNotPublished.Name) != 1 || n.metric(deploy.TickersStale.Name) != 2 {
		t.Errorf("GroupedNotPublished %v TickersStale %v", n.metric(deploy.GroupedNotPublished.Name), n.metric(deploy.TickersStale.Name))
	}
	for _, r := range n.record {
		if r.Outcome == pipeline.Stale && !errors.Is(r.Err, pipeline.ErrDayNotPublished) {
			t.Errorf("%s stale for %v", r.Ticker, r.Err)
		}
	}
	if row, _, _ := n.rows.Latest(context.Background(), "AAPL"); row.AsOf != "2026-11-23" {
		t.Errorf("AAPL's latest row is of %s, want the last good one of 2026-11-23", row.AsOf)
	}
	// The catch-up run at 23:30 queues the day again and the two tickers:
	// one call.
	n.clock.Set(nightOf(t, "2026-11-24").Add(2 * time.Hour))
	if back := n.deliver(n.messages("2026-11-24", "AAPL", "MSFT")); len(back) != 0 {
		t.Fatalf("catch-up handed back %v", back)
	}
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-24"}) {
		t.Errorf("catch-up calls %v", got)
	}
	n.checkRow("AAPL", "2026-11-24")
	n.checkRow("MSFT", "2026-11-24")
}

// A halted ticker keeps its last good row without a call; when it trades
// again its series simply lacks the day (as the provider's own answer does):
// no call either.
func TestHaltedTickerCostsNoCall(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{Universe: []string{"AAPL", "MSFT"}})
	n.night("2026-11-20", "AAPL", "MSFT")
	n.srv.Halt("MSFT", "2026-11-23")
	n.calls()
	n.record = nil
	n.night("2026-11-23", "AAPL", "MSFT")
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-23", "grouped 2026-11-20", "splits"}) {
		t.Errorf("calls %v: a halted ticker must not cost a call", got)
	}
	if !n.outcome("MSFT", pipeline.Stale) || n.outcome("AAPL", pipeline.Stale) || n.metric(deploy.TickersNotInGrouped.Name) != 1 {
		t.Errorf("TickersNotInGrouped %v", n.metric(deploy.TickersNotInGrouped.Name))
	}
	n.checkRow("AAPL", "2026-11-23")
	n.night("2026-11-24", "AAPL", "MSFT")
	if got := n.calls(); len(got) != 3 || slices.Contains(got, "MSFT") {
		t.Errorf("calls %v", got)
	}
	n.checkRow("MSFT", "2026-11-24")
}

func TestGroupedNotAuthorizedFallsBackToPerTickerCalls(t *testing.T) {
	n := newNights(t, "2026-11-23", testSessions, fakepolygon.Options{})
	n.night("2026-11-23", "AAPL", "MSFT")
	n.calls()
	n.srv.SetGroupedForbidden(true)
	if back := n.night("2026-11-24", "AAPL", "MSFT"); len(back) != 0 {
		t.Fatalf("handed back %v", back)
	}
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-24", "splits", "AAPL", "MSFT"}) {
		t.Errorf("calls %v, want the grouped call, the splits, then one per ticker", got)
	}
	n.checkRow("AAPL", "2026-11-24")
	n.checkRow("MSFT", "2026-11-24")
	if n.metric(deploy.GroupedNotAuthorized.Name) != 1 || strings.Count(n.logs.String(), "grouped daily not authorized") != 1 {
		t.Errorf("GroupedNotAuthorized %v, log lines %d: want said once", n.metric(deploy.GroupedNotAuthorized.Name), strings.Count(n.logs.String(), "grouped daily not authorized"))
	}
	if n.metric(deploy.MarketDataKeyRefused.Name) != 0 {
		t.Error("a grouped 403 stopped the run")
	}
}

// A split the provider lists four sessions late: the price-continuity check
// reports the jump it leaves unexplained on the night of the split; the night
// after it is listed, the splits of the trailing window bring it into the
// ledger and the row equals the split-adjusted reference — with no call more
// than a warm night's.
func TestSplitListedLateIsAppliedTheNightAfter(t *testing.T) {
	n := newNights(t, "2026-11-16", testSessions, fakepolygon.Options{
		Splits: []fakepolygon.Split{{Ticker: "AAPL", Date: "2026-11-18", From: 1, To: 4, Listed: "2026-11-20"}}})
	for _, d := range []string{"2026-11-16", "2026-11-17"} {
		n.night(d, "AAPL", "MSFT")
		n.checkRow("AAPL", d)
	}
	n.calls()
	n.record = nil
	n.night("2026-11-18", "AAPL", "MSFT")
	var flagged []marketdata.Discontinuity
	for _, r := range n.record {
		flagged = append(flagged, r.Discontinuities...)
	}
	if len(flagged) != 1 || flagged[0].Ticker != "AAPL" || flagged[0].Date != "2026-11-18" || flagged[0].Explained() || n.metric(deploy.PriceDiscontinuities.Name) != 1 {
		t.Errorf("discontinuities %+v (metric %v)", flagged, n.metric(deploy.PriceDiscontinuities.Name))
	}
	n.night("2026-11-19", "AAPL", "MSFT")
	row, _, _ := n.rows.Latest(context.Background(), "AAPL")
	if differs(row.Snapshot, n.reference("AAPL", "2026-11-19", "")) == "" {
		t.Error("the row before the listing matches the reference: the test shows nothing")
	}
	n.calls()
	n.night("2026-11-20", "AAPL", "MSFT")
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-20", "grouped 2026-11-19", "splits"}) {
		t.Errorf("listing night calls %v", got)
	}
	n.checkRow("AAPL", "2026-11-20")
	n.checkRow("MSFT", "2026-11-20")
	if n.metric(deploy.SplitsFound.Name) != 1 {
		t.Errorf("SplitsFound %v", n.metric(deploy.SplitsFound.Name))
	}
}

// A split listed a day early (the provider's date, corrected later): the
// continuity check names the ledger's entry as the likely cause; once the
// provider corrects the date, the entry moves with it and the row equals the
// reference.
func TestSplitWithAWrongDateIsCorrected(t *testing.T) {
	n := newNights(t, "2026-11-16", testSessions, fakepolygon.Options{
		Splits: []fakepolygon.Split{{Ticker: "TQQQ", Date: "2026-11-18", From: 1, To: 2, ListedAs: "2026-11-17", Corrected: "2026-11-20"}}})
	n.night("2026-11-16", "TQQQ")
	n.record = nil
	n.night("2026-11-17", "TQQQ")
	n.night("2026-11-18", "TQQQ")
	var near []string
	for _, r := range n.record {
		for _, d := range r.Discontinuities {
			if d.Explained() && d.Near.Date == "2026-11-17" {
				near = append(near, d.Date)
			}
		}
	}
	if !slices.Equal(near, []string{"2026-11-17", "2026-11-18"}) {
		t.Errorf("moves explained by the misdated entry: %v", near)
	}
	n.night("2026-11-19", "TQQQ")
	n.calls()
	n.night("2026-11-20", "TQQQ")
	if got := n.calls(); len(got) != 3 {
		t.Errorf("correction night calls %v", got)
	}
	n.checkRow("TQQQ", "2026-11-20")
	ledger, err := n.bars.Ledger(context.Background(), "2026-11-01", "2026-11-30")
	if err != nil || len(ledger) != 1 || ledger[0].Date != "2026-11-18" {
		t.Errorf("ledger %+v %v", ledger, err)
	}
}

// Volumes revised after the close land the next night: the session stored
// at 21:30 with its preliminary volume is fetched once more.
func TestRevisedBarsLandTheNextNight(t *testing.T) {
	n := newNights(t, "2026-11-23", testSessions, fakepolygon.Options{RevisionDelay: 12 * time.Hour})
	n.night("2026-11-23", "AAPL")
	final, _ := fakepolygon.SyntheticBars("AAPL", "2026-11-23", "2026-11-23")
	volume := func() float64 {
		h, err := n.bars.TickerHistory(context.Background(), "AAPL", "2026-11-23", "2026-11-23")
		if err != nil || len(h.Bars) != 1 {
			t.Fatalf("history %+v %v", h, err)
		}
		return h.Bars[0].Volume
	}
	if v := volume(); v != math.Round(final[0].V*fakepolygon.PreliminaryVolume) {
		t.Fatalf("stored at 21:30: %v, want the preliminary %v", v, final[0].V*fakepolygon.PreliminaryVolume)
	}
	n.night("2026-11-24", "AAPL")
	if v := volume(); v != final[0].V {
		t.Errorf("after the next night: %v, want the revised %v", v, final[0].V)
	}
}

// A session that stays empty while later ones are published is learnt as a
// closure of the exchange, never asked again — but only once it was empty on
// two different nights: one empty answer may be the provider's failure to
// serve a day (see TestOneEmptyAnswerIsNotAClosure). The first night records
// it empty; the next asks again and learns the closure; the window then
// reaches one session further back (stored already) and the rows are
// complete over the sessions the exchange held.
func TestUnpublishedSessionIsLearntClosed(t *testing.T) {
	ctx := context.Background()
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{Closed: []string{"2026-11-10"}})
	n.night("2026-11-20", "AAPL")
	if got := n.calls(); !slices.Contains(got, "grouped 2026-11-10") || n.metric(deploy.SessionsClosed.Name) != 0 {
		t.Fatalf("calls %v, SessionsClosed %v", got, n.metric(deploy.SessionsClosed.Name))
	}
	if st, _, _ := n.bars.Session(ctx, "2026-11-10"); st.Status != coverage.Empty || st.Night != "2026-11-20" {
		t.Errorf("2026-11-10 after one empty answer: %+v, want empty on the night of 2026-11-20", st)
	}
	if m, _ := n.bars.Market(ctx); m.Closed("2026-11-10") {
		t.Fatalf("closed after one empty answer: %+v", m)
	}
	if row, _, _ := n.rows.Latest(ctx, "AAPL"); !row.Partial || row.AsOf != "2026-11-20" {
		t.Errorf("row of the first night %+v: want partial", row)
	}
	n.night("2026-11-23", "AAPL")
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-23", "grouped 2026-11-20", "splits", "grouped 2026-11-10"}) || n.metric(deploy.SessionsClosed.Name) != 1 {
		t.Errorf("second night calls %v, SessionsClosed %v", got, n.metric(deploy.SessionsClosed.Name))
	}
	m, _ := n.bars.Market(ctx)
	if !m.Closed("2026-11-10") {
		t.Fatalf("market %+v: want 2026-11-10 closed", m)
	}
	w := coverage.Window(m.Calendar(), "2026-11-23", testSessions)
	row, _, _ := n.rows.Latest(ctx, "AAPL")
	if row.Partial || row.AsOf != "2026-11-23" || row.Bars != testSessions || slices.Contains(w, "2026-11-10") {
		t.Fatalf("row %+v: want complete, on %d sessions", row, testSessions)
	}
	if why := differs(row.Snapshot, n.referenceOver("AAPL", w[0], "2026-11-23")); why != "" {
		t.Errorf("AAPL on 2026-11-23: %s", why)
	}
	n.night("2026-11-24", "AAPL")
	if got := n.calls(); len(got) != 3 || slices.Contains(got, "grouped 2026-11-10") {
		t.Errorf("third night calls %v", got)
	}
}

// A 403 for a date before the plan's history marks where it starts: nothing
// older is asked, the night is no fallback, the rows are complete over what
// the plan reaches.
func TestOutsidePlanMarksTheStartOfHistory(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{PlanFrom: "2026-11-05"})
	if back := n.night("2026-11-20", "AAPL", "MSFT"); len(back) != 0 {
		t.Fatalf("handed back %v", back)
	}
	got := n.calls()
	if !slices.Equal(got[len(got)-2:], []string{"grouped 2026-11-05", "grouped 2026-11-04"}) || slices.Contains(got, "grouped 2026-11-03") {
		t.Errorf("calls %v", got)
	}
	m, _ := n.bars.Market(context.Background())
	if m.PlanFrom != "2026-11-05" || n.metric(deploy.GroupedNotAuthorized.Name) != 0 || n.metric(deploy.MarketDataKeyRefused.Name) != 0 || n.metric(deploy.TickersBackfilled.Name) != 0 {
		t.Errorf("plan from %q; not authorized %v, refused %v, per-ticker %v", m.PlanFrom, n.metric(deploy.GroupedNotAuthorized.Name),
			n.metric(deploy.MarketDataKeyRefused.Name), n.metric(deploy.TickersBackfilled.Name))
	}
	n.checkRowFrom("AAPL", "2026-11-20", "2026-11-05")
	n.night("2026-11-23", "AAPL", "MSFT")
	if got := n.calls(); len(got) != 3 {
		t.Errorf("next night calls %v", got)
	}
	n.checkRowFrom("MSFT", "2026-11-23", "2026-11-05")
}

// An OTC holding is in the grouped answer (include_otc=true): no call of
// its own.
func TestOTCHoldingIsServedByTheGroupedAnswer(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{OTC: []string{"NSRGY"}})
	n.night("2026-11-20", "NSRGY")
	if got := n.calls(); slices.Contains(got, "NSRGY") {
		t.Errorf("calls %v", got)
	}
	n.checkRow("NSRGY", "2026-11-20")
}

// A held ticker the grouped answers lack costs its own call, once the window
// is complete, bounded per night; the next nights ask only for what is new.
func TestHeldTickerTheGroupedAnswersLackCostsBoundedCalls(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{NotGrouped: []string{"ZWXY", "ZWXZ"}})
	n.p.TickerCalls = 1
	n.night("2026-11-20", "AAPL", "ZWXY", "ZWXZ")
	got := n.calls()
	if slices.Contains(got, "ZWXZ") || !slices.Contains(got, "ZWXY") || n.metric(deploy.TickersBackfilled.Name) != 1 {
		t.Errorf("calls %v, TickersBackfilled %v", got, n.metric(deploy.TickersBackfilled.Name))
	}
	n.checkRow("ZWXY", "2026-11-20")
	var spent bool
	for _, r := range n.record {
		spent = spent || (r.Ticker == "ZWXZ" && errors.Is(r.Err, pipeline.ErrTickerCallsSpent))
	}
	if !spent {
		t.Error("ZWXZ is not stale for the spent calls")
	}
	n.night("2026-11-23", "AAPL", "ZWXY")
	reqs := n.srv.Requests()
	last := reqs[len(reqs)-1]
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-23", "grouped 2026-11-20", "splits", "ZWXY"}) || last.From != "2026-11-21" {
		t.Errorf("second night calls %v, the last from %s", got, last.From)
	}
	n.checkRow("ZWXY", "2026-11-23")
}

func TestUnknownSymbolCostsOneCallOnce(t *testing.T) {
	n := newNights(t, "2026-11-23", testSessions, fakepolygon.Options{NotGrouped: []string{"ZZZQ"}})
	// Polygon knows nothing of ZZZQ: resultsCount 0 for it.
	n.srv.EnqueueFor("ZZZQ", fakepolygon.JSON(200, `{"ticker":"ZZZQ","queryCount":0,"resultsCount":0,"adjusted":false,"status":"OK","request_id":"x"}`))
	n.night("2026-11-23", "AAPL", "ZZZQ")
	if got := n.calls(); got[len(got)-1] != "ZZZQ" || slices.Index(got, "ZZZQ") != len(got)-1 {
		t.Errorf("first night calls …%v", got[len(got)-3:])
	}
	n.night("2026-11-24", "AAPL", "ZZZQ")
	if got := n.calls(); slices.Contains(got, "ZZZQ") {
		t.Errorf("second night calls %v: an unknown symbol must not cost a call a night", got)
	}
	if n.metric(deploy.PermanentFailures.Name) != 2 {
		t.Errorf("PermanentFailures %v, want ZZZQ on both nights", n.metric(deploy.PermanentFailures.Name))
	}
}

// A recent listing has fewer bars than the window: complete, no call; the
// indicators that need more are absent, never zero.
func TestRecentListingCostsNoCall(t *testing.T) {
	n := newNights(t, "2026-11-23", 60, fakepolygon.Options{})
	n.srv.Halt("NEWCO", marketdata.TradingDays("2025-01-01", "2026-10-30")...)
	n.night("2026-11-23", "NEWCO")
	n.night("2026-11-24", "NEWCO")
	if got := n.calls(); slices.Contains(got, "NEWCO") {
		t.Errorf("calls %v", got)
	}
	n.checkRow("NEWCO", "2026-11-24")
	row, _, _ := n.rows.Latest(context.Background(), "NEWCO")
	if row.RSI == nil || row.MA50 != nil || row.Bars != 17 {
		t.Errorf("row %+v: want RSI, no MA50, 17 bars", row)
	}
}

func TestRefusedKeyStopsTheRunAndLosesNothing(t *testing.T) {
	n := newNights(t, "2026-11-23", testSessions, fakepolygon.Options{})
	n.night("2026-11-23", "AAPL", "MSFT")
	n.calls()
	// The key is revoked; the re-read secret holds the same revoked key.
	n.key.key, n.key.next = "revoked-key-000000000000", ""
	n.clock.Set(nightOf(t, "2026-11-24"))
	msgs := n.messages("2026-11-24", "AAPL", "MSFT", "NVDA")
	back := n.deliver(msgs)
	if len(back) != 4 {
		t.Fatalf("handed back %v, want the day message and every ticker", back)
	}
	// One call, one re-read, the same call once more, then nothing.
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-24", "grouped 2026-11-24"}) || n.key.refreshes != 1 {
		t.Errorf("calls %v, key re-reads %d", got, n.key.refreshes)
	}
	if n.metric(deploy.MarketDataKeyRefused.Name) != 1 || n.metric(deploy.PermanentFailures.Name) != 0 {
		t.Errorf("MarketDataKeyRefused %v, PermanentFailures %v", n.metric(deploy.MarketDataKeyRefused.Name), n.metric(deploy.PermanentFailures.Name))
	}
	for _, r := range n.record[len(n.record)-4:] {
		if r.Outcome.Settled() {
			t.Errorf("%s settled as %v", r.Label(), r.Outcome)
		}
	}
	if strings.Contains(n.logs.String(), "revoked-key-000000000000") {
		t.Error("the key is in the logs")
	}
	// The operator rotates the key in the secret: the warm function re-reads
	// it on the first refusal and the run goes on.
	n.key.next = storedKey
	n.key.refreshes = 0
	if back := n.deliver(msgs); len(back) != 0 {
		t.Fatalf("after the rotation handed back %v\n%s", back, n.logs.String())
	}
	if n.key.refreshes != 1 {
		t.Errorf("key re-reads %d", n.key.refreshes)
	}
	n.checkRow("NVDA", "2026-11-24")
}

func TestPlanRefusedOnPerTickerBarsStopsTheRun(t *testing.T) {
	n := newNights(t, "2026-11-23", testSessions, fakepolygon.Options{})
	n.srv.SetGroupedForbidden(true)
	n.srv.EnqueueFor("AAPL", fakepolygon.JSON(403, fakepolygon.BodyNotAuthorized), fakepolygon.JSON(403, fakepolygon.BodyNotAuthorized))
	back := n.deliver(n.messages("2026-11-23", "AAPL", "MSFT"))
	// The day message is done (fallback); AAPL's 403 (after one re-read)
	// stops the run: AAPL and MSFT come back, nothing acknowledged as
	// permanent.
	if len(back) != 2 || n.metric(deploy.MarketDataKeyRefused.Name) != 1 || n.metric(deploy.PermanentFailures.Name) != 0 {
		t.Fatalf("handed back %v; MarketDataKeyRefused %v PermanentFailures %v", back, n.metric(deploy.MarketDataKeyRefused.Name), n.metric(deploy.PermanentFailures.Name))
	}
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-23", "splits", "AAPL", "AAPL"}) {
		t.Errorf("calls %v", got)
	}
}

// fakeVisibility records the visibility changes asked for.
type fakeVisibility struct {
	changes []queue.VisibilityChange
}

func (f *fakeVisibility) Change(_ context.Context, c []queue.VisibilityChange) error {
	f.changes = append(f.changes, c...)
	return nil
}

func TestHandedBackRecordsAreReleasedAtOnce(t *testing.T) {
	clock := fakeclock.New(time.Now())
	m := &fakeMarket{clock: clock, step: 30 * time.Second, today: true}
	p, _, emf := newProcessor(m, &fakeStore{}, clock)
	v := &fakeVisibility{}
	p.Visibility, p.RecordBudget, p.Reserve = v, 27*time.Second, 2*time.Second
	ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(100*time.Second))
	defer cancel()
	var recs [][2]string
	for i, tk := range []string{"A", "B", "C", "D", "E"} {
		recs = append(recs, [2]string{fmt.Sprint("m", i+1), body(tk)})
	}
	ev := event(fifoARN, recs...)
	for i := range ev.Records {
		ev.Records[i].ReceiptHandle = "rh-" + ev.Records[i].MessageId
	}
	resp, err := p.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := failedIDs(resp); !slices.Equal(got, []string{"m4", "m5"}) {
		t.Fatalf("handed back %v", got)
	}
	if len(v.changes) != 2 || v.changes[0] != (queue.VisibilityChange{ReceiptHandle: "rh-m4"}) || v.changes[1].ReceiptHandle != "rh-m5" {
		t.Errorf("visibility changes %+v, want m4 and m5 visible at once", v.changes)
	}
	if doc := emfValues(t, emf); doc["RecordsReleased"] != 2.0 {
		t.Errorf("metrics %v", doc)
	}
}

func TestRefusedRecordsKeepTheirVisibilityTimeout(t *testing.T) {
	n := newNights(t, "2026-11-23", testSessions, fakepolygon.Options{})
	v := &fakeVisibility{}
	n.p.Visibility = v
	n.key.key = "revoked-key-000000000000"
	back := n.deliver(n.messages("2026-11-23", "AAPL", "MSFT"))
	if len(back) != 3 || len(v.changes) != 0 {
		t.Fatalf("handed back %v, visibility changes %+v: a refused key's records must wait out their timeout", back, v.changes)
	}
}
