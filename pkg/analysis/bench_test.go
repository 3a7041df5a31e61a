package analysis_test

import (
	"testing"

	"github.com/zsmseven/backend/pkg/analysis"
)

func BenchmarkTickerCall40(b *testing.B) {
	in := bigInput(analysis.TickerBatchSize)
	entries := make([]analysis.TickerEntry, len(in.Positions))
	for i, p := range in.Positions {
		data, err := analysis.EncodeTicker(p.Symbol, *p.Market)
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = analysis.TickerEntry{Symbol: p.Symbol, Data: data}
	}
	for b.Loop() {
		analysis.NewTickerCall(entries, nil, 1)
	}
}

func BenchmarkParseTickers40(b *testing.B) {
	in := bigInput(analysis.TickerBatchSize)
	scores := map[string]int{}
	for _, s := range in.Symbols() {
		scores[s] = 55
	}
	answer := []byte(tickersAnswer(scores))
	call := analysis.TickerCall{Symbols: in.Symbols()}
	b.SetBytes(int64(len(answer)))
	for b.Loop() {
		if a := analysis.ParseTickers(call, answer); len(a.Faulty) > 0 {
			b.Fatal(a.Problems)
		}
	}
}

func BenchmarkManagerInput500(b *testing.B) {
	in := bigInput(analysis.MaxPositions)
	verdicts := make([]analysis.TickerScore, len(in.Positions))
	for i, p := range in.Positions {
		verdicts[i] = analysis.RulesTicker(p)
	}
	for b.Loop() {
		if _, err := analysis.NewManagerInput(in, verdicts); err != nil {
			b.Fatal(err)
		}
	}
}
