package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// An analysis of the last trading day that had no data for some symbols is
// not "fresh": status says which symbols were missing or stale.
func TestStatusAnalysisWithMissingDataIsNotFresh(t *testing.T) {
	ctx := context.Background()
	env := dynalitetest.New(t)
	client, stage := env.Client, env.Stage
	now := time.Now()
	ltd := marketdata.LastTradingDay(now)
	repo := analysisdb.New(client, deploy.PortfolioAnalyses.Name(stage))
	if err := repo.Put(ctx, analysis.Record{
		Portfolio: "P", Timestamp: now.UTC(), Analysis: "a", Model: analysis.RulesName, DataAsOf: ltd,
		Result:  analysis.Result{Summary: "s", Tickers: []analysis.TickerScore{{Ticker: "AAPL", Score: 50, Signal: "hold", Rationale: "r"}}},
		Missing: []string{"MSFT"}, Stale: []string{"TSLA"}, PromptVersion: analysis.PromptVersion, Status: analysis.StatusFallback, Reason: "x",
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := gatherStatus(ctx, client, stage, "P", "test", now)
	if err != nil {
		t.Fatal(err)
	}
	a := rep.Analysis
	if a == nil || a.Fresh || a.DataAsOf != ltd || len(a.Missing) != 1 || a.Missing[0] != "MSFT" || len(a.Stale) != 1 || a.Stale[0] != "TSLA" {
		t.Fatalf("analysis status %+v, want not fresh with MSFT missing and TSLA stale", a)
	}
	var out bytes.Buffer
	printTable(&out, rep)
	for _, want := range []string{"incomplete: 2 symbols without current data", "no data for: MSFT", "old data for: TSLA"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}

// With no portfolio at all, `zsm status --json --portfolio '*'` still prints
// "analyses": [] for scripts that iterate it.
func TestStatusAllPortfoliosWithNoneIsAnEmptyList(t *testing.T) {
	env := dynalitetest.New(t)
	rep, err := gatherStatus(context.Background(), env.Client, env.Stage, "*", "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"analyses":[]`) || strings.Contains(string(b), `"analysis":`) {
		t.Errorf("status JSON %s, want \"analyses\":[] and no \"analysis\"", b)
	}
}

// With '*', the tickers' table shows each ticker's score of its data day —
// one score a night, the same in every portfolio — from the newest
// analysis that has it; the JSON keeps its keys.
func TestStatusAllPortfoliosShowsTheTickersScores(t *testing.T) {
	all := []analysisStatus{
		{Portfolio: "A", Timestamp: "2026-11-28T06:01:00Z", DataAsOf: "2026-11-27", Status: analysis.StatusOK,
			Tickers: []scoreStatus{{Ticker: "AAPL", Score: 71, Signal: "buy"}, {Ticker: "MSFT", Score: 30, Signal: "sell"}}},
		{Portfolio: "B", Timestamp: "2026-11-28T06:02:00Z", DataAsOf: "2026-11-27", Status: analysis.StatusOK,
			Tickers: []scoreStatus{{Ticker: "AAPL", Score: 72, Signal: "buy"}}},
		{Portfolio: "C", Timestamp: "2026-11-29T06:00:00Z", DataAsOf: "2026-11-20", Status: analysis.StatusOK,
			Tickers: []scoreStatus{{Ticker: "MSFT", Score: 90, Signal: "strong_buy"}}}, // another data day
	}
	rep := statusReport{Portfolio: "*", LastTradingDay: "2026-11-27", Analyses: &all,
		Tickers: []tickerStatus{{Ticker: "AAPL", Price: 1, AsOf: "2026-11-27", Fresh: true}, {Ticker: "MSFT", Price: 1, AsOf: "2026-11-27", Fresh: true},
			{Ticker: "TSLA", Price: 1, AsOf: "2026-11-27", Fresh: true}}}
	var out bytes.Buffer
	printTable(&out, rep)
	lines := strings.Split(out.String(), "\n")
	fields := func(prefix string) []string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix+" ") {
				return strings.Fields(l)
			}
		}
		t.Fatalf("no row of %s:\n%s", prefix, out.String())
		return nil
	}
	for sym, want := range map[string][]string{"AAPL": {"72", "buy"}, "MSFT": {"30", "sell"}, "TSLA": {"-", "-"}} {
		f := fields(sym)
		if got := f[len(f)-3 : len(f)-1]; got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s: score and signal %v, want %v", sym, got, want)
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"analysis":`) || !strings.Contains(string(b), `"analyses":[`) {
		t.Errorf("JSON keys changed: %s", b)
	}
}
