package fakepolygon_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
)

type groupedAnswer struct {
	ResultsCount int                      `json:"resultsCount"`
	Results      []fakepolygon.GroupedRow `json:"results"`
	Status       string                   `json:"status"`
}

func grouped(t *testing.T, srv *fakepolygon.Server, date string) (int, groupedAnswer) {
	t.Helper()
	resp, body, err := get(t, srv, "/v2/aggs/grouped/locale/us/market/stocks/"+date+"?adjusted=true", "")
	if err != nil {
		t.Fatal(err)
	}
	var a groupedAnswer
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
	}
	return resp.StatusCode, a
}

// The clock is 21:30 New York on Wednesday 2026-11-25 (02:30 UTC the next day).
func night(t *testing.T) *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC))
}

func TestGroupedAgreesWithPerTicker(t *testing.T) {
	clock := night(t)
	srv := fakepolygon.New(t, fakepolygon.Options{Now: clock.Now, Universe: []string{"MSFT", "AAPL"}})
	// Asking for a ticker adds it to the universe.
	_, body, err := get(t, srv, "/v2/aggs/ticker/NVDA/range/1/day/2026-11-01/2026-11-30", "")
	if err != nil {
		t.Fatal(err)
	}
	perTicker := decode(t, body)
	code, a := grouped(t, srv, "2026-11-25")
	if code != 200 || a.Status != "OK" {
		t.Fatalf("grouped answered %d %s", code, a.Status)
	}
	var tickers []string
	for _, r := range a.Results {
		tickers = append(tickers, r.T)
		// facts.md: t is the end of the window, 16:00 New York (21:00 UTC
		// in November).
		if r.Time != time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC).UnixMilli() {
			t.Errorf("%s: t %d is not 16:00 New York", r.T, r.Time)
		}
	}
	want := []string{"AAPL", "MSFT", "NVDA", "KIMpL", "ZZDUP", "ZZDUP", "ZZZERO"}
	if !slices.Equal(tickers, want) || a.ResultsCount != len(want) {
		t.Fatalf("rows %v (count %d), want %v", tickers, a.ResultsCount, want)
	}
	last := perTicker.Results[len(perTicker.Results)-1]
	if r := a.Results[2]; r.O != last.O || r.H != last.H || r.L != last.L || r.C != last.C || r.V != last.V {
		t.Errorf("grouped NVDA %+v differs from per-ticker %+v", r, last)
	}
	if len(perTicker.Results) == 0 || time.UnixMilli(last.T).UTC().Format(time.RFC3339) != "2026-11-25T05:00:00Z" {
		t.Errorf("per-ticker last bar starts %v, want midnight New York of 2026-11-25", time.UnixMilli(last.T).UTC())
	}
}

func TestGroupedNotPublished(t *testing.T) {
	clock := night(t)
	srv := fakepolygon.New(t, fakepolygon.Options{Now: clock.Now, Universe: []string{"AAPL"}, PublishDelay: 6 * time.Hour, NoJunk: true})
	for _, d := range []string{"2026-11-25", "2026-11-26" /* Thanksgiving */, "2026-11-28" /* Saturday */, "2026-12-01" /* future */} {
		if code, a := grouped(t, srv, d); code != 200 || a.ResultsCount != 0 || a.Results != nil {
			t.Errorf("%s: %d %+v, want resultsCount 0", d, code, a)
		}
	}
	// 16:00 + 6 h: published by 22:00 New York; the per-ticker answer agrees.
	if code, a := grouped(t, srv, "2026-11-24"); code != 200 || a.ResultsCount != 1 {
		t.Errorf("the day before: %d %+v", code, a)
	}
	clock.Advance(time.Hour)
	if _, a := grouped(t, srv, "2026-11-25"); a.ResultsCount != 1 {
		t.Errorf("at 22:30: %+v, want the day published", a)
	}
}

func TestHaltAndForbidden(t *testing.T) {
	clock := night(t)
	srv := fakepolygon.New(t, fakepolygon.Options{Now: clock.Now, Universe: []string{"AAPL", "MSFT"}, NoJunk: true})
	srv.Halt("MSFT", "2026-11-25")
	if _, a := grouped(t, srv, "2026-11-25"); len(a.Results) != 1 || a.Results[0].T != "AAPL" {
		t.Errorf("halted MSFT in the grouped answer: %+v", a.Results)
	}
	_, body, _ := get(t, srv, "/v2/aggs/ticker/MSFT/range/1/day/2026-11-20/2026-11-25", "")
	for _, b := range decode(t, body).Results {
		if time.UnixMilli(b.T).UTC().Day() == 25 {
			t.Error("halted day served per ticker")
		}
	}
	srv.SetGroupedForbidden(true)
	if code, _ := grouped(t, srv, "2026-11-25"); code != 403 {
		t.Errorf("forbidden grouped answered %d", code)
	}
	srv.SetGroupedForbidden(false)
	srv.EnqueueFor(fakepolygon.Grouped, fakepolygon.JSON(503, `{"status":"ERROR","error":"x"}`))
	if code, _ := grouped(t, srv, "2026-11-25"); code != 503 {
		t.Errorf("scripted grouped answered %d", code)
	}
}

func TestSplitsAreListedAndAdjustHistory(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 24, 2, 30, 0, 0, time.UTC)) // 21:30 Monday 2026-11-23
	srv := fakepolygon.New(t, fakepolygon.Options{Now: clock.Now, NoJunk: true})
	srv.AddSplit(fakepolygon.Split{Ticker: "AAPL", Date: "2026-11-24", From: 1, To: 4})
	srv.AddSplit(fakepolygon.Split{Ticker: "MSFT", Date: "2026-10-01", From: 1, To: 2})
	raw, _ := fakepolygon.SyntheticBars("AAPL", "2026-11-20", "2026-11-20")
	before, _ := srv.Bars("AAPL", "2026-11-20", "2026-11-20")
	if before[0].C != raw[0].C*4 {
		t.Errorf("before the split AAPL closed %v, want 4 × %v", before[0].C, raw[0].C)
	}
	clock.Advance(24 * time.Hour) // 21:30 Tuesday: the split has executed
	after, _ := srv.Bars("AAPL", "2026-11-20", "2026-11-24")
	if after[0].C != raw[0].C || after[0].V != raw[0].V {
		t.Errorf("after the split AAPL on 11-20 %+v, want the adjusted series %+v", after[0], raw[0])
	}
	q := url.Values{"execution_date.gte": {"2026-09-01"}, "execution_date.lte": {"2026-11-30"}, "limit": {"1"}}
	_, body, _ := get(t, srv, "/v3/reference/splits?"+q.Encode(), "")
	var page struct {
		Results []struct {
			Ticker        string  `json:"ticker"`
			ExecutionDate string  `json:"execution_date"`
			SplitFrom     float64 `json:"split_from"`
			SplitTo       float64 `json:"split_to"`
		} `json:"results"`
		NextURL string `json:"next_url"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Results) != 1 || page.Results[0].Ticker != "MSFT" || page.NextURL == "" {
		t.Fatalf("first page %s", body)
	}
	u, _ := url.Parse(page.NextURL)
	_, body, _ = get(t, srv, u.RequestURI(), "")
	page.NextURL = ""
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Results) != 1 || page.Results[0].Ticker != "AAPL" || page.Results[0].SplitTo != 4 || page.NextURL != "" {
		t.Fatalf("second page %s", body)
	}
}
