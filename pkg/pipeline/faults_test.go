package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pipeline"
)

// Regressions of the stored history's nights found by the review of issue
// 17: faults of the provider, of the queue and of concurrent consumers that
// the nights of stored_test.go do not play. Same world: the real Polygon
// client against the local Polygon, the real stores on dynalite.

// One grouped row whose prices no market printed (finite and positive, but
// 1e200: beyond what DynamoDB stores) is skipped and counted; the session is
// stored with every other row at the first attempt, instead of failing whole
// as a transient error on every attempt.
func TestAGarbageRowIsSkippedNotTheSession(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{})
	n.p.Publisher = nil // the day message alone
	end, err := marketdata.SessionClose("2026-11-20")
	if err != nil {
		t.Fatal(err)
	}
	ms := end.UnixMilli()
	n.srv.EnqueueFor(fakepolygon.Grouped, fakepolygon.JSON(200, fmt.Sprintf(`{"queryCount":2,"resultsCount":2,"adjusted":false,"status":"OK","request_id":"x","results":[
 {"T":"AAPL","o":199.5,"h":201,"l":199,"c":200.25,"v":1000,"t":%d},
 {"T":"ZJNK","o":1e200,"h":1e200,"l":1e200,"c":1e200,"v":1,"t":%d}]}`, ms, ms)))
	n.clock.Set(nightOf(t, "2026-11-20"))
	n.deliver(n.messages("2026-11-20", "AAPL")[:1])
	if r := n.record[0]; r.Outcome != pipeline.DayDone || r.Day.Rows != 2 || r.Day.Skipped != 1 {
		t.Fatalf("day message %v (%v), %+v: want done at once, one row of two skipped", r.Outcome, r.Err, r.Day)
	}
	st, ok, err := n.bars.Session(context.Background(), "2026-11-20")
	if err != nil || !ok || st.Status != coverage.Stored || st.Rows != 2 || st.Bars != 1 {
		t.Errorf("session %+v (%v %v): want stored, 2 rows, 1 bar", st, ok, err)
	}
	h, err := n.bars.TickerHistory(context.Background(), "AAPL", "2026-11-20", "2026-11-20")
	if err != nil || len(h.Bars) != 1 || h.Bars[0].Close != 200.25 || h.Bars[0].Open != 199.5 {
		t.Errorf("AAPL's bar %+v %v, want the row as sent", h.Bars, err)
	}
	if h, _ := n.bars.TickerHistory(context.Background(), "ZJNK", "2026-11-20", "2026-11-20"); len(h.Bars) != 0 {
		t.Errorf("ZJNK stored: %+v", h.Bars)
	}
	if logs := n.logs.String(); n.metric(deploy.GroupedRowsSkipped.Name) != 1 || !strings.Contains(logs, "ZJNK") || !strings.Contains(logs, "open 1e+200 is outside the sane range") {
		t.Errorf("GroupedRowsSkipped %v; the log does not name ZJNK and why", n.metric(deploy.GroupedRowsSkipped.Name))
	}
}

// A split listed 30 days after its execution date, on a Saturday, is read
// by Monday's check: the splits are asked from 30 days before the last
// check's day (Friday 2026-11-20), not before the night's — AAPL's row of
// Monday equals the split-adjusted reference with a warm night's calls.
func TestASplitListed30DaysLateOnAWeekendIsApplied(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{
		Splits: []fakepolygon.Split{{Ticker: "AAPL", Date: "2026-10-22", From: 1, To: 4, Listed: "2026-11-21"}}})
	n.night("2026-11-20", "AAPL", "MSFT")
	n.calls()
	n.night("2026-11-23", "AAPL", "MSFT")
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-23", "grouped 2026-11-20", "splits"}) {
		t.Errorf("Monday's calls %v, want a warm night's", got)
	}
	reqs := n.srv.Requests()
	if q := reqs[len(reqs)-1].RawQuery; !strings.Contains(q, "execution_date.gte=2026-10-21&execution_date.lte=2026-11-23") {
		t.Errorf("Monday's splits asked with %s, want the execution dates 2026-10-21..2026-11-23", q)
	}
	n.checkRow("AAPL", "2026-11-23")
	n.checkRow("MSFT", "2026-11-23")
	if n.metric(deploy.SplitsFound.Name) != 1 {
		t.Errorf("SplitsFound %v", n.metric(deploy.SplitsFound.Name))
	}
}

// A split the provider lists twice under two ids (the same ticker, date
// and ratio) is one entry of the ledger, applied once: AAPL's rows after its
// 4-for-1 split equal the reference, and the check says so in the log and
// the day's record.
func TestASplitListedTwiceIsAppliedOnce(t *testing.T) {
	n := newNights(t, "2026-11-16", testSessions, fakepolygon.Options{
		Splits: []fakepolygon.Split{{Ticker: "AAPL", Date: "2026-11-18", From: 1, To: 4, ID: "E1", AlsoID: "E7"}}})
	for _, d := range []string{"2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"} {
		n.record = nil
		n.night(d, "AAPL", "MSFT")
		n.checkRow("AAPL", d)
		n.checkRow("MSFT", d)
		// Asked for from its execution date's night on.
		if r := n.record[0]; r.Day == nil || (r.Day.SplitsListedTwice == 1) != (d >= "2026-11-18") {
			t.Errorf("%s: the day's record %+v", d, r.Day)
		}
	}
	ledger, err := n.bars.Ledger(context.Background(), "2026-11-01", "2026-11-30")
	if err != nil || len(ledger) != 1 || ledger[0].ID != "E1" || ledger[0].To != 4 {
		t.Errorf("ledger %+v %v, want the one entry E1", ledger, err)
	}
	if !strings.Contains(n.logs.String(), "splits the provider lists twice") {
		t.Error("not logged")
	}
}
