package indicators_test

import (
	"fmt"
	"time"

	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
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

// A table printer written once against Fields: each optional number gets its
// label, is formatted by its unit, and shows "—" when absent. A new indicator
// appears here without this code changing.
func ExampleFields() {
	closes := make([]float64, 30)
	for i := range closes {
		closes[i] = 100 + float64(i%4)
	}
	bs := make([]marketdata.Bar, len(closes))
	for i, c := range closes {
		bs[i] = marketdata.Bar{Date: time.Date(2026, 3, 2+i, 0, 0, 0, 0, time.UTC).Format(time.DateOnly),
			Open: c, High: c + 1, Low: c - 1, Close: c}
	}
	s, err := indicators.Compute(bs)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range indicators.Fields {
		text := "—"
		if v := f.Get(s); v != nil {
			switch f.Unit {
			case indicators.UnitPercent:
				text = fmt.Sprintf("%.2f %%", *v)
			case indicators.UnitIndex:
				text = fmt.Sprintf("%.1f", *v)
			default:
				text = fmt.Sprintf("%.2f", *v)
			}
		}
		fmt.Printf("%-9s %s\n", f.Label, text)
	}
	// Output:
	// RSI(14)   50.0
	// MA50      —
	// MA200     —
	// 52W HIGH  —
	// 52W LOW   —
	// 1M %      1.00 %
	// 3M %      —
	// 12M %     —
	// VOL 20D   27.80 %
	// ATR(14)   2.50
}
