package devstack

import (
	"context"
	"fmt"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// FillHistory stores in the daily-bars table what the nights before the
// trading day date would have stored (tests and benchmarks that start from a
// warm store): every session of date's window of sessions before date — its
// grouped answer's bars of tickers as the local Polygon printed them, the
// session stored and final — and the ledger checked through the day before.
// The night of date itself is left to the pipeline.
func FillHistory(ctx context.Context, store *bardb.Store, poly *fakepolygon.Server, tickers []string, date string, sessions int) error {
	w := coverage.Window(marketdata.NYSE(), date, sessions)
	if len(w) < 2 {
		return fmt.Errorf("fill history before %s: no session before it", date)
	}
	before := w[:len(w)-1]
	bars := map[string]map[string]marketdata.Bar{}
	for _, tk := range tickers {
		wire, err := poly.RawBars(tk, before[0], before[len(before)-1])
		if err != nil {
			return fmt.Errorf("fill history of %s: %w", tk, err)
		}
		for _, b := range wire {
			d := marketdata.TradingDate(b.T)
			if bars[d] == nil {
				bars[d] = map[string]marketdata.Bar{}
			}
			bars[d][tk] = marketdata.Bar{Date: d, Start: time.UnixMilli(b.T).UTC(), Open: b.O, High: b.H, Low: b.L, Close: b.C, Volume: b.V}
		}
	}
	for _, d := range before {
		if err := store.PutSessionBars(ctx, d, bars[d]); err != nil {
			return err
		}
		if err := store.PutSession(ctx, coverage.Session{Date: d, Status: coverage.Stored, Rows: len(bars[d]), Bars: len(bars[d]), Final: true}); err != nil {
			return err
		}
	}
	return store.SetLedger(ctx, w[0], before[len(before)-1])
}
