package pipeline_test

import (
	"context"
	"fmt"
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
