package indicators_test

import (
	"fmt"

	"github.com/zsmseven/backend/pkg/indicators"
)

// The first 15 closes of StockCharts ChartSchool's RSI worked example
// (cs-rsi.xls); ChartSchool publishes 70.53 for the 15th.
func ExampleRSI() {
	closes := []float64{44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245,
		45.8433, 46.0826, 45.8931, 46.0328, 45.6140, 46.2820, 46.2820}
	rsi, ok := indicators.RSI(closes, indicators.RSIPeriod)
	fmt.Printf("%.2f %v\n", rsi, ok)
	_, ok = indicators.RSI(closes[:14], indicators.RSIPeriod)
	fmt.Println(ok)
	// Output:
	// 70.53 true
	// false
}
