package indicators_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/zsmseven/backend/pkg/indicators"
)

// BenchmarkIndicators measures Compute (validation, RSI(14), MA50) on a year
// of daily bars (250, what processTicker fetches) and on 5,000 bars (about
// twenty years). Results are recorded in docs/benchmarks.md.
func BenchmarkIndicators(b *testing.B) {
	for _, n := range []int{250, 5000} {
		closes := make([]float64, n)
		for i := range closes {
			closes[i] = 100 + 10*math.Sin(float64(i)/7) + float64(i%5)
		}
		bs := bars(closes)
		b.Run(fmt.Sprintf("bars=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := indicators.Compute(bs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
