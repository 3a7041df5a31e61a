package analysis_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zsmseven/backend/pkg/analysis"
)

// bigInput is a portfolio of n positions with full data.
func bigInput(n int) analysis.Input {
	in := analysis.Input{Portfolio: "Bench", LastTradingDay: "2026-11-27"}
	for i := range n {
		in.Positions = append(in.Positions, analysis.Position{Symbol: fmt.Sprintf("S%04d", i), Quantity: f(float64(i + 1)), CostBasis: f(90 * float64(i+1)),
			Price: f(100 + float64(i)), RSI: f(float64(i % 100)), MA50: f(100), MA200: f(95), High52W: f(130), Low52W: f(80),
			Return1MPct: f(1), Return3MPct: f(3), Return12MPct: f(12), Volatility20DPct: f(25), ATR: f(2), AsOf: "2026-11-27", Status: analysis.DataOK})
	}
	return in
}

// answerFor is a valid complete answer for symbols, every ticker at score.
func answerFor(symbols []string, score int) string {
	var sb strings.Builder
	sig := analysis.SignalFor(score)
	act := analysis.ActionsFor(sig)[0]
	sb.WriteString(`{"tickers":[`)
	for i, s := range symbols {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"ticker":%q,"score":%d,"signal":%q,"rationale":"RSI and MA50 are neutral for this holding.","confidence":"medium","key_risk":"market risk","action":%q}`, s, score, sig, act)
	}
	sb.WriteString(`],"summary":"s","overall_risk":"medium","concentration_flags":[],"top_actions":[`)
	for i, s := range symbols[:min(3, len(symbols))] {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"ticker":%q,"action":%q,"reason":"r"}`, s, act)
	}
	sb.WriteString(`],"analysis":"a"}`)
	return sb.String()
}

func BenchmarkBuildPrompt500(b *testing.B) {
	in := bigInput(analysis.MaxPositions)
	for b.Loop() {
		if _, err := analysis.BuildPrompt(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse50(b *testing.B) {
	in := bigInput(analysis.BatchSize)
	answer := []byte(answerFor(in.Symbols(), 50))
	symbols := in.Symbols()
	b.SetBytes(int64(len(answer)))
	for b.Loop() {
		if _, err := analysis.Parse(answer, symbols); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRules500(b *testing.B) {
	in := bigInput(analysis.MaxPositions)
	for b.Loop() {
		analysis.Rules(in)
	}
}
