package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/zsmseven/backend/pkg/bardb"
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

// The nights of the stored-history design, each a day message and its
// tickers' messages through the real Polygon client against the local
// Polygon (whose clock decides what is published) and the real stores on
// dynalite.

const storedKey = "pk-stored-history-0123456789"

// nights is one test's service.
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

// nightOf is 21:30 New York on trading day d.
func nightOf(t *testing.T, d string) time.Time {
	t.Helper()
	c, err := marketdata.CloseInstant(d)
	if err != nil {
		t.Fatal(err)
	}
	return c.Add(5*time.Hour + 30*time.Minute)
}

func newNights(t *testing.T, first string, o fakepolygon.Options) *nights {
	t.Helper()
	env := dynalitetest.New(t, deploy.TickerData, deploy.DailyBars)
	n := &nights{t: t, clock: fakeclock.New(nightOf(t, first)), logs: &bytes.Buffer{}, emf: &bytes.Buffer{}, key: &switchKey{key: storedKey}}
	o.Key, o.Now = storedKey, n.clock.Now
	n.srv = fakepolygon.New(t, o)
	client, err := polygon.New(polygon.Options{BaseURL: n.srv.URL, APIKey: n.key.get,
		Retry: retry.Policy{Attempts: 2, Sleep: func(context.Context, time.Duration) error { return nil }}})
	if err != nil {
		t.Fatal(err)
	}
	n.bars = bardb.NewStore(env.Client, deploy.DailyBars.Name(env.Stage))
	n.rows = tickerdb.NewStore(env.Client, deploy.TickerData.Name(env.Stage))
	n.p = &pipeline.ProcessTicker{Market: client, Grouped: client, Store: n.rows, Bars: n.bars, Source: "polygon",
		RefreshKey: n.key.refresh, Metrics: metrics.New(n.emf, "test"), Logger: logging.New(n.logs, slog.LevelDebug),
		Observer: func(r pipeline.Record) { n.record = append(n.record, r) }}
	return n
}

// night queues what processTickers queues on trading day d (a day message
// and one message per ticker) and hands it to processTicker in batches of
// 10, as the FIFO event source does; it returns the handed-back message ids.
func (n *nights) night(d string, tickers ...string) []string {
	n.t.Helper()
	n.clock.Set(nightOf(n.t, d))
	return n.deliver(n.messages(d, tickers...))
}

func (n *nights) messages(d string, tickers ...string) []queue.Message {
	n.run++
	runID := fmt.Sprint("run-", n.run)
	held := slices.Sorted(slices.Values(tickers))
	msgs := []queue.Message{queue.NewDay(d, held, "tickers", 1, 1, runID, n.clock.Now())}
	for _, t := range held {
		msgs = append(msgs, queue.NewTicker(t, d, runID, n.clock.Now()))
	}
	return msgs
}

func (n *nights) deliver(msgs []queue.Message) []string {
	n.t.Helper()
	var back []string
	for start := 0; start < len(msgs); start += 10 {
		var ev events.SQSEvent
		for i, m := range msgs[start:min(start+10, len(msgs))] {
			body, err := m.Encode()
			if err != nil {
				n.t.Fatal(err)
			}
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("r%d-%d", n.run, start+i), Body: body,
				ReceiptHandle: fmt.Sprintf("rh-%d-%d", n.run, start+i), EventSourceARN: fifoARN,
				Attributes: map[string]string{"MessageGroupId": "tickers"}})
		}
		resp, err := n.p.Handle(context.Background(), ev)
		if err != nil {
			n.t.Fatal(err)
		}
		back = append(back, failedIDs(resp)...)
	}
	return back
}

// calls returns the requests the local Polygon received since the last
// call, as "grouped", "splits" or the ticker.
func (n *nights) calls() []string {
	reqs := n.srv.Requests()
	var out []string
	for _, r := range reqs[n.seen:] {
		switch r.Kind {
		case fakepolygon.KindAggregates:
			out = append(out, r.Ticker)
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
		if line == "" || jsonUnmarshal(line, &doc) != nil {
			continue
		}
		if v, ok := doc[name].(float64); ok {
			sum += v
		}
	}
	return sum
}

// checkRow asserts ticker's row of d and that every indicator equals, to
// 1e-6, the computation on the full split-adjusted history the local
// Polygon serves on that day (the HistoryDays before d).
func (n *nights) checkRow(ticker, d string) {
	n.t.Helper()
	row, ok, err := n.rows.Latest(context.Background(), ticker)
	if err != nil || !ok || row.AsOf != d {
		n.t.Fatalf("%s: latest row %+v (%v, %v), want one of %s", ticker, row, ok, err, d)
	}
	wire, err := n.srv.Bars(ticker, marketdata.AddDays(d, -deploy.DefaultPolygonHistoryDays), d)
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
	if row.Bars != want.Bars || math.Abs(row.Price-want.Price) > 1e-6 {
		n.t.Errorf("%s on %s: %d bars, price %v; want %d and %v", ticker, d, row.Bars, row.Price, want.Bars, want.Price)
	}
	for _, f := range indicators.Fields {
		got, w := f.Get(row.Snapshot), f.Get(want)
		switch {
		case (got == nil) != (w == nil):
			n.t.Errorf("%s on %s: %s = %v, want %v", ticker, d, f.Name, got, w)
		case got != nil && math.Abs(*got-*w) > 1e-6:
			n.t.Errorf("%s on %s: %s = %v, want %v", ticker, d, f.Name, *got, *w)
		}
	}
}

func (n *nights) stale(ticker string) bool {
	for _, r := range n.record {
		if r.Ticker == ticker && r.Outcome == pipeline.Stale {
			return true
		}
	}
	return false
}

func TestColdThenWarmNights(t *testing.T) {
	n := newNights(t, "2026-11-23", fakepolygon.Options{})
	held := []string{"AAPL", "BRK.B", "MSFT"}
	if back := n.night("2026-11-23", held...); len(back) != 0 {
		t.Fatalf("handed back %v", back)
	}
	// Cold: the grouped and splits calls, then one backfill per ticker.
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits", "AAPL", "BRK.B", "MSFT"}) {
		t.Errorf("cold night calls %v", got)
	}
	for _, tk := range held {
		n.checkRow(tk, "2026-11-23")
	}
	if n.metric(deploy.TickersBackfilled.Name) != 3 || n.metric(deploy.GroupedRowsSkipped.Name) != 4 {
		t.Errorf("backfilled %v, grouped rows skipped %v (want 3 and the 4 junk rows)", n.metric(deploy.TickersBackfilled.Name), n.metric(deploy.GroupedRowsSkipped.Name))
	}
	// Warm: two calls, whatever the number of tickers; the values are those
	// of the full history as served that day.
	for _, d := range []string{"2026-11-24", "2026-11-25", "2026-11-27"} {
		if back := n.night(d, held...); len(back) != 0 {
			t.Fatalf("%s: handed back %v", d, back)
		}
		if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits"}) {
			t.Errorf("%s: warm night calls %v, want grouped and splits only", d, got)
		}
		for _, tk := range held {
			n.checkRow(tk, d)
		}
	}
	st, ok, err := n.bars.Day(context.Background(), "2026-11-27")
	if err != nil || !ok || st.Status != bardb.DayPublished || st.Merged != 3 || st.Skipped != 4 {
		t.Errorf("day state %+v %v %v", st, ok, err)
	}
}

func TestRedeliveryCallsNothing(t *testing.T) {
	n := newNights(t, "2026-11-24", fakepolygon.Options{})
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
	n := newNights(t, "2026-11-23", fakepolygon.Options{PublishDelay: 6 * time.Hour})
	n.clock.Set(nightOf(t, "2026-11-23").Add(3 * time.Hour)) // 00:30: the 23rd is published
	n.deliver(n.messages("2026-11-23", "AAPL", "MSFT"))
	n.calls()
	n.record = nil
	if back := n.night("2026-11-24", "AAPL", "MSFT"); len(back) != 0 {
		t.Fatalf("handed back %v", back)
	}
	// The grouped call answers resultsCount 0: no ticker call, rows kept.
	if got := n.calls(); !slices.Equal(got, []string{"grouped"}) {
		t.Errorf("calls %v, want the grouped call alone", got)
	}
	if !n.stale("AAPL") || !n.stale("MSFT") || n.metric(deploy.GroupedNotPublished.Name) != 1 || n.metric(deploy.TickersStale.Name) != 2 {
		t.Errorf("stale AAPL %v MSFT %v; GroupedNotPublished %v TickersStale %v", n.stale("AAPL"), n.stale("MSFT"),
			n.metric(deploy.GroupedNotPublished.Name), n.metric(deploy.TickersStale.Name))
	}
	for _, r := range n.record {
		if r.Outcome == pipeline.Stale && !errors.Is(r.Err, pipeline.ErrDayNotPublished) {
			t.Errorf("%s stale for %v", r.Ticker, r.Err)
		}
	}
	if row, _, _ := n.rows.Latest(context.Background(), "AAPL"); row.AsOf != "2026-11-23" {
		t.Errorf("AAPL's latest row is of %s, want the last good one of 2026-11-23", row.AsOf)
	}
	if st, _, _ := n.bars.Day(context.Background(), "2026-11-24"); st.Status != bardb.DayNotPublished {
		t.Errorf("day state %+v", st)
	}
	// The catch-up run at 23:30 queues the day again and the two tickers.
	n.clock.Set(nightOf(t, "2026-11-24").Add(2 * time.Hour))
	if back := n.deliver(n.messages("2026-11-24", "AAPL", "MSFT")); len(back) != 0 {
		t.Fatalf("catch-up handed back %v", back)
	}
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits"}) {
		t.Errorf("catch-up calls %v", got)
	}
	n.checkRow("AAPL", "2026-11-24")
	n.checkRow("MSFT", "2026-11-24")
}

func TestTickerMissingFromGroupedIsStaleThenBackfilledOnce(t *testing.T) {
	n := newNights(t, "2026-11-20", fakepolygon.Options{Universe: []string{"AAPL", "MSFT"}})
	n.night("2026-11-20", "AAPL", "MSFT")
	n.srv.Halt("MSFT", "2026-11-23")
	n.calls()
	n.record = nil
	n.night("2026-11-23", "AAPL", "MSFT")
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits"}) {
		t.Errorf("calls %v: a halted ticker must not cost a call", got)
	}
	if !n.stale("MSFT") || n.stale("AAPL") || n.metric(deploy.TickersNotInGrouped.Name) != 1 {
		t.Errorf("stale MSFT %v AAPL %v; TickersNotInGrouped %v", n.stale("MSFT"), n.stale("AAPL"), n.metric(deploy.TickersNotInGrouped.Name))
	}
	n.checkRow("AAPL", "2026-11-23")
	// The next night MSFT trades again: its history has a gap on the 23rd,
	// one backfill checks it (Polygon has no bar of it either) ...
	n.night("2026-11-24", "AAPL", "MSFT")
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits", "MSFT"}) {
		t.Errorf("calls %v, want one backfill of MSFT", got)
	}
	n.checkRow("MSFT", "2026-11-24")
	// ... and the gap, checked, costs nothing afterwards.
	n.night("2026-11-25", "AAPL", "MSFT")
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits"}) {
		t.Errorf("calls %v after the checked gap", got)
	}
	n.checkRow("MSFT", "2026-11-25")
}

func TestGroupedNotAuthorizedFallsBackToPerTickerCalls(t *testing.T) {
	n := newNights(t, "2026-11-23", fakepolygon.Options{})
	n.night("2026-11-23", "AAPL", "MSFT")
	n.calls()
	n.srv.SetGroupedForbidden(true)
	if back := n.night("2026-11-24", "AAPL", "MSFT"); len(back) != 0 {
		t.Fatalf("handed back %v", back)
	}
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "AAPL", "MSFT"}) {
		t.Errorf("calls %v, want the grouped call then one per ticker", got)
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

func TestSplitBackfillsOnlyTheTickerThatSplit(t *testing.T) {
	n := newNights(t, "2026-11-20", fakepolygon.Options{})
	n.srv.AddSplit(fakepolygon.Split{Ticker: "AAPL", Date: "2026-11-24", From: 1, To: 4})
	n.night("2026-11-20", "AAPL", "MSFT")
	n.night("2026-11-23", "AAPL", "MSFT")
	n.checkRow("AAPL", "2026-11-23") // the price level before the split
	n.calls()
	// The split executes at the open of the 24th: Polygon re-adjusts
	// AAPL's history; the splits call finds it; AAPL alone is backfilled.
	n.night("2026-11-24", "AAPL", "MSFT")
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits", "AAPL"}) {
		t.Errorf("calls %v, want one backfill of AAPL", got)
	}
	n.checkRow("AAPL", "2026-11-24")
	n.checkRow("MSFT", "2026-11-24")
	if n.metric(deploy.SplitsFound.Name) != 1 {
		t.Errorf("SplitsFound %v", n.metric(deploy.SplitsFound.Name))
	}
	before, _, _ := n.rows.Latest(context.Background(), "AAPL")
	if before.High52W == nil || *before.High52W > before.Price*2 {
		t.Errorf("AAPL's 52-week high %v beside price %v: the stored history was not re-adjusted", before.High52W, before.Price)
	}
	n.night("2026-11-25", "AAPL", "MSFT")
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits"}) {
		t.Errorf("calls %v the night after", got)
	}
}

func TestRefusedKeyStopsTheRunAndLosesNothing(t *testing.T) {
	n := newNights(t, "2026-11-23", fakepolygon.Options{})
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
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "grouped"}) || n.key.refreshes != 1 {
		t.Errorf("calls %v, key re-reads %d", got, n.key.refreshes)
	}
	if n.metric(deploy.MarketDataKeyRefused.Name) != 1 || n.metric(deploy.PermanentFailures.Name) != 0 {
		t.Errorf("PolygonKeyRefused %v, PermanentFailures %v", n.metric(deploy.MarketDataKeyRefused.Name), n.metric(deploy.PermanentFailures.Name))
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
	n := newNights(t, "2026-11-23", fakepolygon.Options{})
	n.srv.EnqueueFor("AAPL", fakepolygon.JSON(403, fakepolygon.BodyNotAuthorized), fakepolygon.JSON(403, fakepolygon.BodyNotAuthorized))
	back := n.deliver(n.messages("2026-11-23", "AAPL", "MSFT"))
	// The day message is done; AAPL's 403 (after one re-read) stops the run:
	// AAPL and MSFT come back, nothing acknowledged as permanent.
	if len(back) != 2 || n.metric(deploy.MarketDataKeyRefused.Name) != 1 || n.metric(deploy.PermanentFailures.Name) != 0 {
		t.Fatalf("handed back %v; PolygonKeyRefused %v PermanentFailures %v", back, n.metric(deploy.MarketDataKeyRefused.Name), n.metric(deploy.PermanentFailures.Name))
	}
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits", "AAPL", "AAPL"}) {
		t.Errorf("calls %v", got)
	}
}

func TestUnknownSymbolCostsOneCallOnce(t *testing.T) {
	n := newNights(t, "2026-11-23", fakepolygon.Options{})
	// Polygon knows nothing of ZZZQ: resultsCount 0 for it, every time.
	n.srv.EnqueueFor("ZZZQ", fakepolygon.JSON(200, `{"ticker":"ZZZQ","queryCount":0,"resultsCount":0,"adjusted":true,"status":"OK","request_id":"x"}`))
	// Halted on the whole range: not in the grouped answer either.
	n.srv.Halt("ZZZQ", marketdata.TradingDays("2026-01-01", "2026-12-31")...)
	n.night("2026-11-23", "AAPL", "ZZZQ")
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits", "AAPL", "ZZZQ"}) {
		t.Errorf("first night calls %v", got)
	}
	n.night("2026-11-24", "AAPL", "ZZZQ")
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits"}) {
		t.Errorf("second night calls %v: an unknown symbol must not cost a call a night", got)
	}
	if n.metric(deploy.PermanentFailures.Name) != 2 {
		t.Errorf("PermanentFailures %v, want ZZZQ on both nights", n.metric(deploy.PermanentFailures.Name))
	}
}

func TestRecentListingIsNotBackfilledEveryNight(t *testing.T) {
	n := newNights(t, "2026-11-23", fakepolygon.Options{})
	// NEWCO trades from 2026-09-01 only: 60-odd sessions.
	n.srv.Halt("NEWCO", marketdata.TradingDays("2025-01-01", "2026-08-31")...)
	n.night("2026-11-23", "NEWCO")
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits", "NEWCO"}) {
		t.Errorf("first night calls %v", got)
	}
	n.night("2026-11-24", "NEWCO")
	if got := n.calls(); !slices.Equal(got, []string{"grouped", "splits"}) {
		t.Errorf("second night calls %v: a short but complete history was fetched again", got)
	}
	n.checkRow("NEWCO", "2026-11-24")
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
	n := newNights(t, "2026-11-23", fakepolygon.Options{})
	v := &fakeVisibility{}
	n.p.Visibility = v
	n.key.key = "revoked-key-000000000000"
	back := n.deliver(n.messages("2026-11-23", "AAPL", "MSFT"))
	if len(back) != 3 || len(v.changes) != 0 {
		t.Fatalf("handed back %v, visibility changes %+v: a refused key's records must wait out their timeout", back, v.changes)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
