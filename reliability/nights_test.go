package reliability

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// The scenarios of the stored-history night: each plays a first night
// (2026-11-23, everything backfilled) on the world's clock, then the night
// of 2026-11-24 with the fault, as consecutive nights run in production.
const (
	firstNight = "2026-11-23"
	theNight   = "2026-11-24"
)

// callsSince lists the requests the local Polygon received after the first
// n: "grouped", "splits" or the ticker.
func callsSince(w *world, n int) []string {
	var out []string
	for _, r := range w.poly.Requests()[n:] {
		if r.Kind == fakepolygon.KindAggregates {
			out = append(out, r.Ticker)
		} else {
			out = append(out, r.Kind)
		}
	}
	return out
}

// warm plays the first night, then sets the clock to 21:30 of the night,
// and returns the number of Polygon requests so far.
func warm(t *testing.T, w *world, at time.Duration) int {
	t.Helper()
	w.clock.Set(nightOf(firstNight).Add(at))
	w.publish(tickers...)
	w.drain(drainOptions{})
	w.clock.Set(nightOf(theNight))
	return w.poly.Calls()
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
				if got := callsSince(w, mark); !slices.Equal(got, []string{"grouped"}) {
					t.Errorf("first pass calls %v, want the grouped call alone", got)
				}
				st, _, _ := bardb.NewStore(w.db, deploy.DailyBars.Name(w.stage)).Day(context.Background(), theNight)
				if st.Status != bardb.DayNotPublished {
					t.Errorf("day state %+v after the first pass", st)
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
			outcome: "the first pass calls grouped once and keeps the last good rows (6 stale, no ticker call); the catch-up run queues the day and the 6 tickers again: grouped and splits calls, all written",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if got := callsSince(w, mark); !slices.Equal(got, []string{"grouped", "grouped", "splits"}) {
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
				if got := callsSince(w, mark); !slices.Equal(got, []string{"grouped", "splits"}) {
					t.Errorf("the night's calls %v, want grouped and splits only", got)
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
				if got := callsSince(w, mark); !slices.Equal(got, append([]string{"grouped"}, tickers...)) {
					t.Errorf("the night's calls %v", got)
				}
				if tl.metrics[deploy.GroupedNotAuthorized.Name] != 1 || tl.metrics[deploy.MarketDataKeyRefused.Name] != 0 ||
					strings.Count(w.logs.String(), "grouped daily not authorized") != 1 {
					t.Errorf("GroupedNotAuthorized %v, MarketDataKeyRefused %v", tl.metrics[deploy.GroupedNotAuthorized.Name], tl.metrics[deploy.MarketDataKeyRefused.Name])
				}
			}},
		{name: "split backfill", faults: "AAPL splits 4-for-1 at the open of the night's day: Polygon re-adjusts its history",
			opts: worldOptions{clock: clock, polygon: fakepolygon.Options{Universe: tickers}},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.AddSplit(fakepolygon.Split{Ticker: "AAPL", Date: theNight, From: 1, To: 4})
				mark = warm(t, w, 0)
			},
			written: 6,
			outcome: "the splits call finds it; AAPL alone is backfilled (one call) and its row is computed on the re-adjusted history; the others from the grouped answer",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if got := callsSince(w, mark); !slices.Equal(got, []string{"grouped", "splits", "AAPL"}) {
					t.Errorf("the night's calls %v", got)
				}
				row, _, _ := tickerdb.NewStore(w.db, deploy.TickerData.Name(w.stage)).Latest(context.Background(), "AAPL")
				want, _ := w.poly.Bars("AAPL", theNight, theNight)
				if len(want) != 1 || row.Price != want[0].C || row.High52W == nil || *row.High52W > 2*row.Price || tl.metrics[deploy.SplitsFound.Name] != 1 {
					t.Errorf("AAPL row %+v, want the post-split close %v and a re-adjusted 52-week high", row, want)
				}
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
				if got := callsSince(w, mark); !slices.Equal(got, []string{"grouped", "grouped"}) || w.rereads != 1 {
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
