package reliability

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// The scenarios of the stored history's nights: each plays a first night
// (2026-11-23) over a store the nights before filled, on the world's clock,
// then the night measured with its fault — or, for the irregular ones, the
// nights leading to it — as nights run in production.
const (
	firstNight = "2026-11-23"
	theNight   = "2026-11-24"
)

// callsSince lists the requests the local Polygon received after the first
// n: "grouped DATE", "splits" or the ticker.
func callsSince(w *world, n int) []string {
	var out []string
	for _, r := range w.poly.Requests()[n:] {
		switch r.Kind {
		case fakepolygon.KindAggregates:
			out = append(out, r.Ticker)
		case fakepolygon.KindGrouped:
			out = append(out, "grouped "+r.Date)
		default:
			out = append(out, r.Kind)
		}
	}
	return out
}

// warm fills the store as the nights before the first night would have,
// plays the first night at 21:30 plus at, then sets the clock to 21:30 of
// the night measured; it returns the number of Polygon requests so far.
func warm(t *testing.T, w *world, at time.Duration) int {
	t.Helper()
	w.fillHistory(firstNight, tickers...)
	return playNight(t, w, firstNight, at, theNight)
}

// playNight plays the night of d at 21:30 plus at (processTickers, then the
// queue drained) and sets the clock to 21:30 of next; it returns the number
// of Polygon requests so far.
func playNight(t *testing.T, w *world, d string, at time.Duration, next string) int {
	t.Helper()
	w.clock.Set(nightOf(d).Add(at))
	w.publish(tickers...)
	w.drain(drainOptions{})
	w.clock.Set(nightOf(next))
	return w.poly.Calls()
}

// sameAsReference checks ticker's latest row is the complete row of d and
// equals, to 1e-6, indicators computed on the bars the local Polygon serves
// split-adjusted as of now (per ticker, adjusted=true) for the window of d.
func sameAsReference(t *testing.T, w *world, ticker, d string) {
	t.Helper()
	row, ok, err := tickerdb.NewStore(w.db, deploy.TickerData.Name(w.stage)).Latest(context.Background(), ticker)
	if err != nil || !ok || row.AsOf != d || row.Partial {
		t.Fatalf("%s: latest row %+v (%v %v), want the complete one of %s", ticker, row, ok, err, d)
	}
	n := w.consumer.Sessions
	if n == 0 {
		n = 253
	}
	win := coverage.Window(marketdata.NYSE(), d, n)
	m, _ := bardb.NewStore(w.db, deploy.DailyBars.Name(w.stage)).Market(context.Background())
	wire, err := w.poly.Bars(ticker, max(win[0], m.PlanFrom), d)
	if err != nil {
		t.Fatal(err)
	}
	var bars []marketdata.Bar
	for _, b := range wire {
		bars = append(bars, marketdata.Bar{Date: marketdata.TradingDate(b.T), Start: time.UnixMilli(b.T), Open: b.O, High: b.H, Low: b.L, Close: b.C, Volume: b.V})
	}
	want, err := indicators.Compute(bars)
	if err != nil {
		t.Fatal(err)
	}
	if row.Bars != want.Bars || math.Abs(row.Price-want.Price) > 1e-6 {
		t.Errorf("%s: %d bars, price %v; want %d and %v", ticker, row.Bars, row.Price, want.Bars, want.Price)
	}
	for _, f := range indicators.Fields {
		g, r := f.Get(row.Snapshot), f.Get(want)
		if (g == nil) != (r == nil) || (g != nil && math.Abs(*g-*r) > 1e-6) {
			t.Errorf("%s: %s = %v, want %v", ticker, f.Name, g, r)
		}
	}
}

func nightScenarios() []pipelineScenario {
	var mark int
	clock := nightOf(firstNight)
	return []pipelineScenario{
		{name: "grouped daily not published, then the catch-up", faults: "Polygon publishes a day 6 h after the close: at 21:30 the grouped answer has resultsCount 0",
			opts: worldOptions{clock: clock, polygon: fakepolygon.Options{PublishDelay: 6 * time.Hour, Universe: tickers}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.hold(tickers...)             // the catch-up run scans the shared tables
				mark = warm(t, w, 2*time.Hour) // the first night's catch-up time: published
			},
			then: func(t *testing.T, w *world) (drained, int) {
				// The day, empty; the first night's session once more (fetched
				// before the next close); the splits.
				if got := callsSince(w, mark); !slices.Equal(got, []string{"grouped " + theNight, "grouped " + firstNight, "splits"}) {
					t.Errorf("first pass calls %v", got)
				}
				st, _, _ := bardb.NewStore(w.db, deploy.DailyBars.Name(w.stage)).Session(context.Background(), theNight)
				if st.Status != coverage.Empty {
					t.Errorf("session state %+v after the first pass", st)
				}
				// 23:30: the catch-up run queues the day and the 6 tickers again.
				w.clock.Advance(2 * time.Hour)
				sum := w.catchUp()
				if sum.DayMessages != 1 || sum.Queued != 6 {
					t.Errorf("catch-up %+v", sum)
				}
				return w.drain(drainOptions{}), sum.DayMessages + sum.Queued
			},
			written: 6, stale: 6,
			outcome: "the first pass finds the day empty and keeps the last good rows (6 stale, no ticker call); the catch-up run queues the day and the 6 tickers again: one grouped call, all written",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if got := callsSince(w, mark); !slices.Equal(got, []string{"grouped " + theNight, "grouped " + firstNight, "splits", "grouped " + theNight}) {
					t.Errorf("the night's calls %v", got)
				}
				if tl.metrics[deploy.GroupedNotPublished.Name] != 1 {
					t.Errorf("GroupedNotPublished %v", tl.metrics[deploy.GroupedNotPublished.Name])
				}
			}},
		{name: "ticker missing from the grouped answer", faults: "MSFT halted on the night's day: no row for it in the grouped answer (nor any bar)",
			opts: worldOptions{clock: clock, polygon: fakepolygon.Options{Universe: tickers}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				mark = warm(t, w, 0)
				w.poly.Halt("MSFT", theNight)
			},
			written: 5, stale: 1,
			outcome: "MSFT keeps its last good row (stale, counted in TickersNotInGrouped and TickersStale) without a call; the others written from the grouped answer",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if got := callsSince(w, mark); len(got) != 3 || slices.Contains(got, "MSFT") {
					t.Errorf("the night's calls %v, want the day, the day before again and the splits", got)
				}
				row, _, _ := tickerdb.NewStore(w.db, deploy.TickerData.Name(w.stage)).Latest(context.Background(), "MSFT")
				if row.AsOf != firstNight || tl.metrics[deploy.TickersNotInGrouped.Name] != 1 {
					t.Errorf("MSFT's latest row of %s, TickersNotInGrouped %v", row.AsOf, tl.metrics[deploy.TickersNotInGrouped.Name])
				}
			}},
		{name: "grouped daily not authorized (403)", faults: "the plan does not include grouped daily: 403 NOT_AUTHORIZED on it",
			opts: worldOptions{clock: clock, polygon: fakepolygon.Options{Universe: tickers}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				mark = warm(t, w, 0)
				w.poly.SetGroupedForbidden(true)
			},
			written: 6,
			outcome: "the night falls back to one call per ticker, said once in the log and in GroupedNotAuthorized; all written; not a refused key",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if got := callsSince(w, mark); !slices.Equal(got, append([]string{"grouped " + theNight, "splits"}, tickers...)) {
					t.Errorf("the night's calls %v", got)
				}
				if tl.metrics[deploy.GroupedNotAuthorized.Name] != 1 || tl.metrics[deploy.MarketDataKeyRefused.Name] != 0 ||
					strings.Count(w.logs.String(), "grouped daily not authorized") != 1 {
					t.Errorf("GroupedNotAuthorized %v, MarketDataKeyRefused %v", tl.metrics[deploy.GroupedNotAuthorized.Name], tl.metrics[deploy.MarketDataKeyRefused.Name])
				}
			}},
		{name: "missed nights", faults: "no run on 2026-11-24 nor 2026-11-25 (Polygon or AWS down, a dead-lettered day message): the next night is 2026-11-27",
			opts: worldOptions{clock: clock, polygon: fakepolygon.Options{Universe: tickers}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				mark = warm(t, w, 0)
				w.clock.Set(nightOf("2026-11-27"))
			},
			written: 6,
			outcome: "the night costs a warm night's three calls and one per missed session (5): the two sessions filled as queue work behind the tickers, which are written again complete; no ticker call",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				want := []string{"grouped 2026-11-27", "grouped " + firstNight, "splits", "grouped 2026-11-25", "grouped " + theNight}
				if got := callsSince(w, mark); !slices.Equal(got, want) {
					t.Errorf("the night's calls %v, want %v", got, want)
				}
				for _, tk := range tickers {
					sameAsReference(t, w, tk, "2026-11-27")
				}
				if tl.Queued != 2+6 {
					t.Errorf("queued by processTicker %d, want the 2 fills and the 6 tickers again", tl.Queued)
				}
			}},
		{name: "split listed late", faults: "AAPL splits 4-for-1 at the open of 2026-11-24; Polygon lists the split only on 2026-11-25",
			opts: worldOptions{clock: clock, polygon: fakepolygon.Options{Universe: tickers,
				Splits: []fakepolygon.Split{{Ticker: "AAPL", Date: theNight, From: 1, To: 4, Listed: "2026-11-25"}}}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				warm(t, w, 0)
				mark = playNight(t, w, theNight, 0, "2026-11-25")
			},
			written: 6,
			outcome: "on the split's night the price-continuity check logs and counts AAPL's unexplained jump; the night it is listed, the trailing window's splits call brings it into the ledger: AAPL's row equals the split-adjusted reference with no call more than a warm night's",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if got := callsSince(w, mark); len(got) != 3 || slices.Contains(got, "AAPL") {
					t.Errorf("the listing night's calls %v", got)
				}
				if tl.metrics[deploy.PriceDiscontinuities.Name] != 1 || tl.metrics[deploy.SplitsFound.Name] != 1 ||
					!strings.Contains(w.logs.String(), "explained by no adjustment of the ledger") {
					t.Errorf("PriceDiscontinuities %v, SplitsFound %v", tl.metrics[deploy.PriceDiscontinuities.Name], tl.metrics[deploy.SplitsFound.Name])
				}
				sameAsReference(t, w, "AAPL", "2026-11-25")
				sameAsReference(t, w, "MSFT", "2026-11-25")
			}},
		{name: "unpublished day then closed", faults: "the exchange does not open on 2026-11-24 (a closure the rule calendar does not know): its grouped answer stays empty",
			opts: worldOptions{clock: clock, polygon: fakepolygon.Options{Universe: tickers}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.CloseSession(theNight)
				warm(t, w, 0)
				mark = playNight(t, w, theNight, 0, "2026-11-25") // empty: the tickers stale
			},
			written: 6,
			outcome: "the next night's fill finds the session still empty — on a second night — while its own is published: recorded as a closure (SessionsClosed), the window reaches one session back (stored), rows complete; the session is never asked again",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				want := []string{"grouped 2026-11-25", "splits", "grouped " + theNight}
				if got := callsSince(w, mark); !slices.Equal(got, want) {
					t.Errorf("the night's calls %v, want %v", got, want)
				}
				m, _ := bardb.NewStore(w.db, deploy.DailyBars.Name(w.stage)).Market(context.Background())
				if !m.Closed(theNight) || tl.metrics[deploy.SessionsClosed.Name] != 1 {
					t.Errorf("closures %+v, SessionsClosed %v", m.Closures, tl.metrics[deploy.SessionsClosed.Name])
				}
				row, _, _ := tickerdb.NewStore(w.db, deploy.TickerData.Name(w.stage)).Latest(context.Background(), "AAPL")
				if row.AsOf != "2026-11-25" || row.Partial || row.Bars != 253 {
					t.Errorf("AAPL's row %+v", row)
				}
				next := playNight(t, w, "2026-11-27", 0, "2026-11-30")
				if got := callsSince(w, next-3); slices.Contains(got, "grouped "+theNight) {
					t.Errorf("the closed session asked again: %v", got)
				}
			}},
		{name: "session answered empty once", faults: "Polygon answers 2026-11-24's grouped call with no rows once, on its own night, though the exchange traded; later answers carry it",
			opts: worldOptions{clock: clock, polygon: fakepolygon.Options{Universe: tickers}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.ServeEmpty(theNight, 1)
				warm(t, w, 0)
				mark = playNight(t, w, theNight, 0, "2026-11-25") // empty: the tickers stale
			},
			written: 6,
			outcome: "one empty answer is not a closure: the session is recorded empty on its night; the next night's fill asks again and stores it while a later session is published; no closure learnt, rows complete over the full window",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				want := []string{"grouped 2026-11-25", "splits", "grouped " + theNight}
				if got := callsSince(w, mark); !slices.Equal(got, want) {
					t.Errorf("the night's calls %v, want %v", got, want)
				}
				m, _ := bardb.NewStore(w.db, deploy.DailyBars.Name(w.stage)).Market(context.Background())
				if len(m.Closures) != 0 || tl.metrics[deploy.SessionsClosed.Name] != 0 {
					t.Errorf("closures %+v, SessionsClosed %v", m.Closures, tl.metrics[deploy.SessionsClosed.Name])
				}
				for _, tk := range tickers {
					sameAsReference(t, w, tk, "2026-11-25")
				}
			}},
		{name: "day message fails after its grouped call", faults: "the splits endpoint answers 400 on the night (a plan without it, or a bug of ours): the day message is acknowledged as a permanent failure once the day is stored",
			opts: worldOptions{clock: clock, polygon: fakepolygon.Options{Universe: tickers}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				mark = warm(t, w, 0)
				w.poly.EnqueueFor(fakepolygon.Splits, fakepolygon.JSON(400, `{"status":"ERROR","request_id":"x","error":"bad parameter"}`))
			},
			written: 6, permanent: 1,
			outcome: "the night records no part, but the session stored says what the tickers need: all served by the grouped answer (partial rows: the ledger was not checked) with no call of their own; per-ticker calls stay bounded whatever becomes of a day message",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if got := callsSince(w, mark); !slices.Equal(got, []string{"grouped " + theNight, "grouped " + firstNight, "splits"}) {
					t.Errorf("the night's calls %v", got)
				}
				if tl.metrics[deploy.TickersBackfilled.Name] != 0 {
					t.Errorf("TickersBackfilled %v", tl.metrics[deploy.TickersBackfilled.Name])
				}
				row, _, _ := tickerdb.NewStore(w.db, deploy.TickerData.Name(w.stage)).Latest(context.Background(), "AAPL")
				if row.AsOf != theNight || !row.Partial {
					t.Errorf("AAPL's row %+v: want the partial row of %s", row, theNight)
				}
			}},
		{name: "403 before the plan history", faults: "a cold store (a window of 30 sessions); the plan's history starts on 2026-11-05: earlier dates answer 403 `Your plan doesn't include this data timeframe`",
			opts:    worldOptions{clock: nightOf(theNight), sessions: 30, polygon: fakepolygon.Options{Universe: tickers, PlanFrom: "2026-11-05"}},
			written: 6,
			outcome: "the fill stops at the first 403: the plan's start is recorded and nothing older asked (one refused call); no per-ticker fallback, not a refused key; rows complete over what the plan reaches",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				got := callsSince(w, 0)
				if !slices.Contains(got, "grouped 2026-11-04") || slices.Contains(got, "grouped 2026-11-03") || slices.Contains(got, "AAPL") {
					t.Errorf("calls %v", got)
				}
				m, _ := bardb.NewStore(w.db, deploy.DailyBars.Name(w.stage)).Market(context.Background())
				if m.PlanFrom != "2026-11-05" || tl.metrics[deploy.GroupedNotAuthorized.Name] != 0 || tl.metrics[deploy.MarketDataKeyRefused.Name] != 0 {
					t.Errorf("plan from %q, GroupedNotAuthorized %v, MarketDataKeyRefused %v", m.PlanFrom, tl.metrics[deploy.GroupedNotAuthorized.Name], tl.metrics[deploy.MarketDataKeyRefused.Name])
				}
				sameAsReference(t, w, "AAPL", theNight)
			}},
		{name: "Polygon key refused", faults: "the key is revoked: every call 401 `Unknown API Key`, the re-read secret too; an operator puts a new key in the secret",
			opts: worldOptions{clock: clock, visibility: 1080 * time.Second, polygon: fakepolygon.Options{Universe: tickers}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				mark = warm(t, w, 0)
				w.key = "revoked-key-00000000000000000"
			},
			then: func(t *testing.T, w *world) (drained, int) {
				// The run stopped on the day message: one call, one re-read,
				// the same call again; everything handed back, nothing
				// acknowledged, and the records wait out the visibility
				// timeout (no release).
				if got := callsSince(w, mark); !slices.Equal(got, []string{"grouped " + theNight, "grouped " + theNight}) || w.rereads != 1 {
					t.Errorf("calls %v, re-reads %d", got, w.rereads)
				}
				c := w.sqs.Counts(w.queue)
				tl := w.count(7, tickers)
				if c.InFlight != 7 || c.Visible != 0 || tl.Permanent != 0 || tl.metrics[deploy.MarketDataKeyRefused.Name] != 1 {
					t.Errorf("queue %+v, permanent %d, MarketDataKeyRefused %v", c, tl.Permanent, tl.metrics[deploy.MarketDataKeyRefused.Name])
				}
				w.mu.Lock()
				w.next = polygonKey
				w.mu.Unlock()
				w.clock.Advance(1080 * time.Second)
				return w.drain(drainOptions{}), 0
			},
			written: 6,
			outcome: "a failure of the run: after one re-read of the key, the day message and every ticker are handed back unacknowledged (MarketDataKeyRefused) and wait out the 18-minute visibility timeout; the rotated key is then re-read and all are written",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if w.rereads != 2 || tl.metrics[deploy.MarketDataKeyRefused.Name] != 1 {
					t.Errorf("re-reads %d, MarketDataKeyRefused %v", w.rereads, tl.metrics[deploy.MarketDataKeyRefused.Name])
				}
				if strings.Contains(w.logs.String(), "revoked-key-00000000000000000") {
					t.Error("the revoked key is in the logs")
				}
			}},
	}
}
