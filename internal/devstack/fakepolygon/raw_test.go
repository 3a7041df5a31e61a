package fakepolygon_test

import (
	"encoding/json"
	"math"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
)

// groupedOf asks the grouped answer of date with the given query.
func groupedOf(t *testing.T, srv *fakepolygon.Server, date, query string) (int, groupedAnswer) {
	t.Helper()
	resp, body, err := get(t, srv, "/v2/aggs/grouped/locale/us/market/stocks/"+date+"?"+query, "")
	if err != nil {
		t.Fatal(err)
	}
	var a groupedAnswer
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
	} else if err := json.Unmarshal(body, &a); err != nil || a.Status != "NOT_AUTHORIZED" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	return resp.StatusCode, a
}

// adjusted=false serves what the market printed: before a 4-for-1 split
// that has executed, four times the adjusted close, a quarter of its volume;
// the grouped answer of a past session agrees with the per-ticker one either
// way.
func TestRawAndAdjusted(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC)) // 21:30 Wednesday 2026-11-25
	srv := fakepolygon.New(t, fakepolygon.Options{Now: clock.Now, Universe: []string{"AAPL"}, NoJunk: true,
		Splits: []fakepolygon.Split{{Ticker: "AAPL", Date: "2026-11-24", From: 1, To: 4}}})
	adj, _ := srv.Bars("AAPL", "2026-11-20", "2026-11-25")
	raw, _ := srv.RawBars("AAPL", "2026-11-20", "2026-11-25")
	series, _ := fakepolygon.SyntheticBars("AAPL", "2026-11-20", "2026-11-25")
	if len(adj) != 4 || len(raw) != 4 {
		t.Fatalf("bars %d %d", len(adj), len(raw))
	}
	for i := range adj {
		want := series[i].C
		if i < 2 { // 11-20 and 11-23, before the split
			want *= 4
		}
		if adj[i].C != series[i].C || raw[i].C != want {
			t.Errorf("bar %d: adjusted %v raw %v, want %v and %v", i, adj[i].C, raw[i].C, series[i].C, want)
		}
	}
	if raw[0].V != adj[0].V/4 {
		t.Errorf("raw volume %v, adjusted %v", raw[0].V, adj[0].V)
	}
	_, body, _ := get(t, srv, "/v2/aggs/ticker/AAPL/range/1/day/2026-11-20/2026-11-25?adjusted=false&sort=asc&limit=50000", "")
	a := decode(t, body)
	if a.Adjusted || len(a.Results) != 4 || a.Results[0].C != raw[0].C {
		t.Errorf("per-ticker adjusted=false: %+v", a)
	}
	for q, want := range map[string]float64{"adjusted=false": raw[0].C, "adjusted=true": adj[0].C, "": adj[0].C} {
		if _, g := groupedOf(t, srv, "2026-11-20", q); len(g.Results) != 1 || g.Results[0].C != want {
			t.Errorf("grouped 2026-11-20 %q: %+v, want close %v", q, g.Results, want)
		}
	}
}

// OTC tickers are in the grouped answer only with include_otc=true, marked;
// per ticker always.
func TestIncludeOTC(t *testing.T) {
	clock := night(t)
	srv := fakepolygon.New(t, fakepolygon.Options{Now: clock.Now, Universe: []string{"AAPL"}, OTC: []string{"NSRGY"}, NoJunk: true})
	_, without := groupedOf(t, srv, "2026-11-25", "adjusted=false")
	_, with := groupedOf(t, srv, "2026-11-25", "adjusted=false&include_otc=true")
	if len(without.Results) != 1 || len(with.Results) != 2 || with.Results[1].T != "NSRGY" || !with.Results[1].OTC || with.Results[0].OTC {
		t.Fatalf("without %+v, with %+v", without.Results, with.Results)
	}
	_, body, _ := get(t, srv, "/v2/aggs/ticker/NSRGY/range/1/day/2026-11-25/2026-11-25", "")
	if a := decode(t, body); len(a.Results) != 1 || a.Results[0].C != with.Results[1].C {
		t.Errorf("per-ticker NSRGY %+v", a.Results)
	}
}

// A split listed late is absent from the splits answer until its listing
// day; one listed with a wrong date shows that date until corrected.
func TestSplitsListedLateOrCorrected(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 24, 2, 30, 0, 0, time.UTC)) // 21:30 Monday 2026-11-23
	srv := fakepolygon.New(t, fakepolygon.Options{Now: clock.Now, NoJunk: true, Splits: []fakepolygon.Split{
		{Ticker: "AAPL", Date: "2026-11-16", From: 1, To: 4, Listed: "2026-11-24", ID: "aapl-split"},
		{Ticker: "TQQQ", Date: "2026-11-12", ListedAs: "2026-11-11", Corrected: "2026-11-25", From: 1, To: 2},
	}})
	list := func() []string {
		q := url.Values{"execution_date.gte": {"2026-11-01"}, "execution_date.lte": {"2026-11-30"}, "limit": {"1000"}}
		_, body, _ := get(t, srv, "/v3/reference/splits?"+q.Encode(), "")
		var page struct {
			Results []struct {
				ID, Ticker    string
				ExecutionDate string `json:"execution_date"`
			} `json:"results"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range page.Results {
			out = append(out, r.Ticker+" "+r.ExecutionDate+" "+r.ID)
		}
		return out
	}
	if got := list(); !slices.Equal(got, []string{"TQQQ 2026-11-11 E2"}) {
		t.Errorf("Monday: %v", got)
	}
	clock.Advance(24 * time.Hour) // Tuesday: AAPL listed, TQQQ still wrong
	if got := list(); !slices.Equal(got, []string{"TQQQ 2026-11-11 E2", "AAPL 2026-11-16 aapl-split"}) {
		t.Errorf("Tuesday: %v", got)
	}
	clock.Advance(24 * time.Hour) // Wednesday: corrected
	if got := list(); !slices.Equal(got, []string{"TQQQ 2026-11-12 E2", "AAPL 2026-11-16 aapl-split"}) {
		t.Errorf("Wednesday: %v", got)
	}
	// The prices follow the true date whatever the listing says.
	raw, _ := srv.RawBars("TQQQ", "2026-11-11", "2026-11-12")
	series, _ := fakepolygon.SyntheticBars("TQQQ", "2026-11-11", "2026-11-12")
	if raw[0].C != series[0].C*2 || raw[1].C != series[1].C {
		t.Errorf("TQQQ printed %v %v, series %v %v", raw[0].C, raw[1].C, series[0].C, series[1].C)
	}
}

// Volumes are revised RevisionDelay after the close: asked at 21:30 the
// session's volume is the preliminary one, the next evening the final one.
func TestRevisedVolumes(t *testing.T) {
	clock := night(t) // 21:30 2026-11-25
	srv := fakepolygon.New(t, fakepolygon.Options{Now: clock.Now, Universe: []string{"AAPL"}, NoJunk: true, RevisionDelay: 12 * time.Hour})
	series, _ := fakepolygon.SyntheticBars("AAPL", "2026-11-24", "2026-11-25")
	_, g := groupedOf(t, srv, "2026-11-25", "adjusted=false")
	if g.Results[0].V != math.Round(series[1].V*fakepolygon.PreliminaryVolume) || g.Results[0].C != series[1].C || g.Results[0].VW == series[1].VW {
		t.Errorf("at 21:30: %+v, want the preliminary volume of %v", g.Results[0], series[1].V)
	}
	_, prev := groupedOf(t, srv, "2026-11-24", "adjusted=false")
	if prev.Results[0].V != series[0].V || prev.Results[0].VW != series[0].VW {
		t.Errorf("the day before: %+v, want the revised %+v", prev.Results[0], series[0])
	}
	clock.Advance(24 * time.Hour)
	if _, g := groupedOf(t, srv, "2026-11-25", "adjusted=false"); g.Results[0].V != series[1].V {
		t.Errorf("the next evening: %v, want %v", g.Results[0].V, series[1].V)
	}
}

// A date before the plan's history answers 403 with Polygon's timeframe
// message, on both endpoints; the day after Thanksgiving's rows carry t at
// its 13:00 close; a closed session answers empty and serves no bar.
func TestPlanWindowEarlyCloseAndClosure(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 12, 2, 2, 30, 0, 0, time.UTC)) // 21:30 Tuesday 2026-12-01
	srv := fakepolygon.New(t, fakepolygon.Options{Now: clock.Now, Universe: []string{"AAPL"}, NoJunk: true, PlanFrom: "2024-12-01", Closed: []string{"2026-11-30"}})
	if code, a := groupedOf(t, srv, "2024-11-29", "adjusted=false"); code != 403 {
		t.Errorf("before the plan: %d %+v", code, a)
	}
	resp, body, _ := get(t, srv, "/v2/aggs/ticker/AAPL/range/1/day/2024-11-01/2024-12-31", "")
	if resp.StatusCode != 403 || string(body) != fakepolygon.BodyOutsidePlan {
		t.Errorf("per ticker before the plan: %d %s", resp.StatusCode, body)
	}
	_, early := groupedOf(t, srv, "2026-11-27", "adjusted=false")
	if len(early.Results) != 1 || early.Results[0].Time != time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC).UnixMilli() {
		t.Errorf("early close t: %+v", early.Results)
	}
	if _, c := groupedOf(t, srv, "2026-11-30", "adjusted=false"); c.ResultsCount != 0 {
		t.Errorf("closed session: %+v", c)
	}
	srv.CloseSession("2026-12-01")
	if bars, _ := srv.RawBars("AAPL", "2026-11-25", "2026-12-01"); len(bars) != 2 {
		t.Errorf("bars around the closures: %d, want 11-25 and 11-27", len(bars))
	}
	// A session served empty once, then as it traded.
	srv.ServeEmpty("2026-11-25", 1)
	for i, want := range []int{0, 1} {
		if _, g := groupedOf(t, srv, "2026-11-25", "adjusted=false"); g.ResultsCount != want {
			t.Errorf("2026-11-25 served empty once, answer %d: %d rows, want %d", i+1, g.ResultsCount, want)
		}
	}
}
