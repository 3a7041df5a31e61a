package analysis_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/symbol"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

func f(v float64) *float64 { return &v }

// snap is a snapshot with only price and the given RSI, MA50 and MA200.
func snap(asOf string, price float64, rsi, ma50, ma200 *float64) *indicators.Snapshot {
	return &indicators.Snapshot{AsOf: asOf, Price: price, RSI: rsi, MA50: ma50, MA200: ma200, Bars: 250}
}

// fullSnap has every indicator of the row.
func fullSnap() indicators.Snapshot {
	return indicators.Snapshot{AsOf: "2026-11-27", Price: 278.85, RSI: f(61.234), MA50: f(265.5), MA200: f(240),
		High52W: f(290), Low52W: f(190), Return1MPct: f(4.2), Return3MPct: f(9.8), Return12MPct: f(31.5), Volatility20DPct: f(24.6), ATR: f(5.1), Bars: 300}
}

// sampleInput: AAPL fresh with every figure, BRK.B four sessions stale with
// price and RSI, MSFT without data or price.
func sampleInput() analysis.Input {
	aapl := fullSnap()
	return analysis.Input{
		Portfolio:      "ZSM Seven",
		LastTradingDay: "2026-11-27",
		Positions: []analysis.Position{
			{Symbol: "AAPL", Quantity: f(10), CostBasis: f(1502.5), Market: &aapl, Status: analysis.DataOK},
			{Symbol: "BRK.B", Quantity: f(3), Market: snap("2026-11-20", 505.1, f(48.9), nil, nil), Status: analysis.DataStale, StaleSessions: 4},
			{Symbol: "MSFT", Quantity: f(2), CostBasis: f(800), Status: analysis.DataMissing},
		},
	}
}

// bigInput is n fresh positions with every figure.
func bigInput(n int) analysis.Input {
	in := analysis.Input{Portfolio: "Big", LastTradingDay: "2026-11-27"}
	for i := range n {
		s := fullSnap()
		s.Price = 100 + float64(i%50)
		in.Positions = append(in.Positions, analysis.Position{Symbol: sym(i), Quantity: f(float64(1 + i%7)), CostBasis: f(900),
			Market: &s, Status: analysis.DataOK})
	}
	return in
}

// sym is the i-th synthetic symbol, in sorted order.
func sym(i int) string {
	s := fmt.Sprintf("T%c%c%c", 'A'+i/676%26, 'A'+i/26%26, 'A'+i%26)
	if !symbol.Valid(s) {
		panic(s)
	}
	return s
}

// render is a whole request as the model sees it, for a golden file.
func render(t *testing.T, r analysis.Request) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, m := range r.Messages {
		b.WriteString("=== " + m.Role + " ===\n" + m.Content + "\n")
	}
	var schema bytes.Buffer
	require.NoError(t, json.Indent(&schema, r.Schema, "", "  "))
	b.WriteString("=== schema " + r.SchemaName + " ===\n")
	b.Write(schema.Bytes())
	fmt.Fprintf(&b, "\n=== max_completion_tokens %d, cache key %s ===\n", r.MaxCompletionTokens, r.CacheKey)
	return b.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./pkg/analysis -update to create it")
	assert.Equal(t, string(want), string(got), "prompt changed: bump PromptVersion if intended, then go test ./pkg/analysis -update")
}

// verdict is a valid verdict of score s with its band's default action.
func verdict(ticker string, s int, conf string) analysis.TickerScore {
	sig := analysis.SignalFor(s)
	return analysis.TickerScore{Ticker: ticker, Score: s, Signal: sig, Rationale: "r.", Confidence: conf, KeyRisk: "k", Action: analysis.ActionsFor(sig)[0], Source: analysis.SourceModel}
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
