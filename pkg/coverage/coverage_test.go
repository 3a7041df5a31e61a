package coverage_test

import (
	"slices"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// The 253 sessions ending on Friday 2026-11-20 begin on 2025-11-19: counted
// back over the NYSE's published holidays of 2025 and 2026 (among them
// Thanksgiving 2025-11-27, Christmas, New Year's Day, Good Friday
// 2026-04-03, Independence Day observed 2026-07-03).
func TestWindow(t *testing.T) {
	w := coverage.Window(marketdata.NYSE(), "2026-11-20", 253)
	if len(w) != 253 || w[0] != "2025-11-19" || w[252] != "2026-11-20" || slices.Contains(w, "2025-11-27") || slices.Contains(w, "2026-07-03") {
		t.Fatalf("window %d sessions %s..%s", len(w), w[0], w[len(w)-1])
	}
	// A learnt closure inside the window pushes its start back one session.
	cal, err := marketdata.NYSE().WithClosures(marketdata.Closure{Date: "2026-03-10", Reason: "learnt"})
	if err != nil {
		t.Fatal(err)
	}
	if w := coverage.Window(cal, "2026-11-20", 253); len(w) != 253 || w[0] != "2025-11-18" || slices.Contains(w, "2026-03-10") {
		t.Fatalf("with a closure: %s.. (%d)", w[0], len(w))
	}
	if w := coverage.Window(marketdata.NYSE(), "2026-11-21", 253); w != nil {
		t.Errorf("a Saturday has a window: %v", w[:1])
	}
	// The calendar begins in 2000: the first sessions have shorter windows.
	if w := coverage.Window(marketdata.NYSE(), "2000-01-05", 253); len(w) != 3 || w[0] != "2000-01-03" {
		t.Errorf("window of 2000-01-05: %v", w)
	}
}

func TestMissingAndStretch(t *testing.T) {
	w := []string{"2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"}
	s := map[string]coverage.Session{
		"2026-11-20": {Status: coverage.Stored},
		"2026-11-19": {Status: coverage.Stored},
		"2026-11-18": {Status: coverage.Empty},
		"2026-11-17": {Status: coverage.Closed},
	}
	if got := coverage.Missing(w, s, ""); !slices.Equal(got, []string{"2026-11-18", "2026-11-16"}) {
		t.Errorf("missing %v", got)
	}
	if got := coverage.Stretch(w, s, ""); !slices.Equal(got, []string{"2026-11-19", "2026-11-20"}) {
		t.Errorf("stretch %v", got)
	}
	// The plan's history begins on 2026-11-19: nothing before it is missing.
	if got := coverage.Missing(w, s, "2026-11-19"); len(got) != 0 {
		t.Errorf("missing with the plan's start: %v", got)
	}
	if got := coverage.Stretch(w, s, "2026-11-19"); !slices.Equal(got, w) {
		t.Errorf("stretch with the plan's start: %v", got)
	}
	s["2026-11-18"] = coverage.Session{Status: coverage.Stored}
	s["2026-11-16"] = coverage.Session{Status: coverage.OutsidePlan}
	if got := coverage.Missing(w, s, ""); len(got) != 0 {
		t.Errorf("complete window, missing %v", got)
	}
	if got := coverage.Stretch(w, s, ""); !slices.Equal(got, w) {
		t.Errorf("complete window, stretch %v", got)
	}
}

// A session is final once fetched after the next session's close: Friday
// 2026-11-20's next session closes Monday 2026-11-23 at 16:00 New York
// (21:00 UTC); the day after Thanksgiving closes at 13:00.
func TestFinalAt(t *testing.T) {
	cal := marketdata.NYSE()
	mon := time.Date(2026, 11, 23, 21, 0, 0, 0, time.UTC)
	if coverage.FinalAt(cal, "2026-11-20", mon.Add(-time.Second)) || !coverage.FinalAt(cal, "2026-11-20", mon) {
		t.Error("2026-11-20 final around Monday's close")
	}
	wed := time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC) // 13:00 New York, the early close
	if !coverage.FinalAt(cal, "2026-11-25", wed) || coverage.FinalAt(cal, "2026-11-25", wed.Add(-time.Minute)) {
		t.Error("2026-11-25 final at Friday's early close")
	}
}

func TestMarketCalendar(t *testing.T) {
	m := coverage.Market{Closures: []marketdata.Closure{{Date: "2026-03-10", Reason: "learnt"}, {Date: "2026-03-14", Reason: "a Saturday"}}}
	cal := m.Calendar()
	if cal.IsTradingDay("2026-03-10") || !cal.IsTradingDay("2026-03-11") || !m.Closed("2026-03-10") || m.Closed("2026-03-11") {
		t.Error("learnt closure not applied")
	}
	n := coverage.Night{Parts: []string{"a"}}
	if !n.HasPart("a") || n.HasPart("b") {
		t.Error("HasPart")
	}
}
