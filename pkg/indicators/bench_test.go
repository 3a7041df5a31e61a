package indicators_test

import (
	"fmt"
	"testing"

	"github.com/zsmseven/backend/pkg/indicators"
)

// BenchmarkIndicators measures Compute (validation and every indicator of
// Fields) on daily bars with a range around each close: 250 bars (a year;
// the 52-week range and 12-month return are still absent), 300 bars (every
// indicator present; processTicker's 400 calendar days are about 275
// sessions) and 5,000 bars (about twenty years). Results are recorded in
// docs/benchmarks.md.
func BenchmarkIndicators(b *testing.B) {
	for _, n := range []int{250, 300, 5000} {
		bs := wavyBars(n)
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
