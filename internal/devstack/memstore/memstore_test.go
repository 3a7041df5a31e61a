package memstore_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/memstore"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/retry"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

func bar(t *testing.T, date string, c float64) marketdata.Bar {
	t.Helper()
	start, err := marketdata.SessionStart(date)
	if err != nil {
		t.Fatal(err)
	}
	return marketdata.Bar{Date: date, Start: start, Open: c - 1, High: c + 1, Low: c - 2, Close: c, Volume: 1500}
}

// read is everything the use case can read back of a stored history.
type read struct {
	AAPL, BRKB    coverage.History
	Ledger        []marketdata.Adjustment
	Sessions      map[string]coverage.Session
	Session       coverage.Session
	SessionFound  bool
	Night         coverage.Night
	NightFound    bool
	NoNight       bool
	Market        coverage.Market
	HistoryBefore coverage.History
	CallsTaken    []bool
	Claims        []bool
}

// play writes the same history through the port and reads it back.
func play(t *testing.T, h pipeline.History) read {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var r read
	var err error
	r.HistoryBefore, err = h.TickerHistory(ctx, "AAPL", "2026-11-01", "2026-11-30")
	must(err)
	for i, d := range []string{"2026-11-20", "2026-11-23", "2026-11-24", "2026-11-25"} {
		must(h.PutSessionBars(ctx, d, map[string]marketdata.Bar{"AAPL": bar(t, d, 200+float64(i)), "BRK.B": bar(t, d, 480.25)}))
	}
	// A revision overwrites, a ticker's own bars add to the sessions.
	must(h.PutSessionBars(ctx, "2026-11-24", map[string]marketdata.Bar{"AAPL": bar(t, "2026-11-24", 202.5)}))
	must(h.PutTickerBars(ctx, "BRK.B", []marketdata.Bar{bar(t, "2026-11-19", 470), bar(t, "2026-11-26", 490)}))
	must(h.PutTicker(ctx, "BRK.B", coverage.Ticker{PerTicker: "2026-11-26"}))

	split := func(ticker, date, id string, from, to float64) marketdata.Adjustment {
		return marketdata.Adjustment{Ticker: ticker, Date: date, Kind: marketdata.KindSplit, ID: id, From: from, To: to}
	}
	must(h.ChangeLedger(ctx, []marketdata.Adjustment{
		split("AAPL", "2026-11-24", "E1", 1, 4), split("BRK.B", "2026-11-02", "E2", 1, 2), split("AAPL", "2026-10-01", "E3", 1, 2),
	}, nil))
	// A corrected ratio overwrites its entry; a retracted one goes.
	must(h.ChangeLedger(ctx, []marketdata.Adjustment{split("AAPL", "2026-11-24", "E1", 1, 5)}, []marketdata.Adjustment{split("BRK.B", "2026-11-02", "E2", 1, 2)}))

	at := time.Date(2026, 11, 25, 2, 30, 0, 0, time.UTC)
	must(h.PutSession(ctx, coverage.Session{Date: "2026-11-24", Status: coverage.Stored, Rows: 3, Bars: 2, FetchedAt: at, Final: true, Night: "2026-11-24"}))
	must(h.PutSession(ctx, coverage.Session{Date: "2026-11-25", Status: coverage.Empty, FetchedAt: at, Night: "2026-11-25"}))
	must(h.PutSession(ctx, coverage.Session{Date: "2026-12-01", Status: coverage.Closed}))
	for _, part := range []string{"b", "a", "b"} {
		must(h.AddNightPart(ctx, "2026-11-25", part))
	}
	must(h.SetFallback(ctx, "2026-11-25"))
	for range 3 {
		ok, err := h.TakeTickerCall(ctx, "2026-11-25", 2)
		must(err)
		r.CallsTaken = append(r.CallsTaken, ok)
	}
	must(h.SetLedger(ctx, "2025-11-20", "2026-11-25"))
	must(h.SetLedger(ctx, "2025-11-01", "2026-11-20")) // older: no change
	must(h.MovePlanFrom(ctx, "2024-11-25"))
	must(h.MovePlanFrom(ctx, "2024-11-20")) // back: no change
	must(h.AddClosure(ctx, marketdata.Closure{Date: "2026-11-27", Reason: "learnt"}))
	must(h.AddClosure(ctx, marketdata.Closure{Date: "2026-11-18", Reason: "storm"}))
	now := time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		owner string
		at    time.Duration
	}{{"a", 0}, {"b", time.Minute}, {"b", 4 * time.Minute}} {
		ok, err := h.Claim(ctx, "s#2026-11-25", c.owner, now.Add(c.at), now.Add(c.at+3*time.Minute))
		must(err)
		r.Claims = append(r.Claims, ok)
	}
	must(h.Release(ctx, "s#2026-11-25", "a")) // b's: kept
	ok, err := h.Claim(ctx, "s#2026-11-25", "c", now.Add(5*time.Minute), now.Add(6*time.Minute))
	must(err)
	r.Claims = append(r.Claims, ok)

	r.AAPL, err = h.TickerHistory(ctx, "AAPL", "2026-11-20", "2026-11-24")
	must(err)
	r.BRKB, err = h.TickerHistory(ctx, "BRK.B", "2026-11-01", "2026-11-30")
	must(err)
	r.Ledger, err = h.Ledger(ctx, "2026-10-01", "2026-11-30")
	must(err)
	r.Sessions, err = h.Sessions(ctx, "2026-11-24", "2026-11-30")
	must(err)
	r.Session, r.SessionFound, err = h.Session(ctx, "2026-11-24")
	must(err)
	r.Night, r.NightFound, err = h.Night(ctx, "2026-11-25")
	must(err)
	r.Night.UpdatedAt = time.Time{} // the store's clock
	_, found, err := h.Night(ctx, "2026-11-24")
	must(err)
	r.NoNight = !found
	r.Market, err = h.Market(ctx)
	must(err)
	return r
}

// The in-memory store reads back exactly what the DynamoDB store does after
// the same writes: the benchmark of 10,000 tickers and the batch tests that
// use it play the same nights.
func TestReadsBackWhatTheDynamoDBStoreDoes(t *testing.T) {
	env := dynalitetest.New(t, deploy.DailyBars)
	want := play(t, bardb.NewStore(env.Client, deploy.DailyBars.Name(env.Stage)))
	got := play(t, memstore.NewHistory())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("memstore read back\n%+v\nbardb\n%+v", got, want)
	}
	// The reference values, from the writes above, so that both cannot be
	// wrong the same way.
	if len(want.AAPL.Bars) != 3 || want.AAPL.Bars[2].Close != 202.5 || len(want.AAPL.Ledger) != 2 || want.AAPL.Ledger[1].To != 5 {
		t.Errorf("AAPL = %+v", want.AAPL)
	}
	if len(want.BRKB.Bars) != 6 || want.BRKB.Ticker.PerTicker != "2026-11-26" || len(want.BRKB.Ledger) != 0 {
		t.Errorf("BRK.B = %+v", want.BRKB)
	}
	if len(want.Ledger) != 2 || len(want.Sessions) != 2 || !want.SessionFound || !want.NightFound || !want.NoNight ||
		!reflect.DeepEqual(want.Night.Parts, []string{"a", "b"}) || !want.Night.Fallback || want.Night.TickerCalls != 2 ||
		!reflect.DeepEqual(want.CallsTaken, []bool{true, true, false}) || !reflect.DeepEqual(want.Claims, []bool{true, false, true, false}) ||
		want.Market.Closures[0].Date != "2026-11-18" || want.Market.LedgerThrough != "2026-11-25" || want.Market.PlanFrom != "2024-11-25" ||
		want.Sessions["2026-11-25"].Night != "2026-11-25" {
		t.Errorf("states = %+v", want)
	}
	if len(want.HistoryBefore.Bars) != 0 {
		t.Errorf("empty store read %+v", want.HistoryBefore)
	}
}

// Both refuse, as a permanent error, a bar with a price of zero, a
// bar of another session, and an adjustment that is not one.
func TestRefusesWhatTheDynamoDBStoreRefuses(t *testing.T) {
	env := dynalitetest.New(t, deploy.DailyBars)
	ctx := context.Background()
	for name, h := range map[string]pipeline.History{
		"bardb": bardb.NewStore(env.Client, deploy.DailyBars.Name(env.Stage)), "memstore": memstore.NewHistory(),
	} {
		bad := bar(t, "2026-11-24", 100)
		bad.Close = 0
		for what, err := range map[string]error{
			"a price of zero": h.PutTickerBars(ctx, "AAPL", []marketdata.Bar{bad}),
			"another session": h.PutSessionBars(ctx, "2026-11-25", map[string]marketdata.Bar{"AAPL": bar(t, "2026-11-24", 100)}),
			"a ratio of zero": h.ChangeLedger(ctx, []marketdata.Adjustment{{Ticker: "AAPL", Date: "2026-11-24", Kind: marketdata.KindSplit, From: 0, To: 4}}, nil),
		} {
			if !retry.IsPermanent(err) {
				t.Errorf("%s: %s: err = %v, want a permanent error", name, what, err)
			}
		}
		if got, err := h.TickerHistory(ctx, "AAPL", "2026-11-01", "2026-11-30"); err != nil || len(got.Bars) != 0 || len(got.Ledger) != 0 {
			t.Errorf("%s: stored %+v, %v after refusals", name, got, err)
		}
	}
}
