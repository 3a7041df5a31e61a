package marketdata_test

import (
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
)

// The pipeline asks for the trading days of a ticker's 400-day window and the
// last trading day on every message: these are the calendar's hot paths.
func BenchmarkTradingDays400(b *testing.B) {
	for b.Loop() {
		if len(marketdata.TradingDays("2025-10-21", "2026-11-24")) == 0 {
			b.Fatal("no trading days")
		}
	}
}

func BenchmarkLastTradingDay(b *testing.B) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) // a Monday before the close: walks back over a weekend and Thanksgiving week
	for b.Loop() {
		if marketdata.LastTradingDay(now) == "" {
			b.Fatal("no day")
		}
	}
}

func BenchmarkIsTradingDay(b *testing.B) {
	for b.Loop() {
		if marketdata.IsTradingDay("2026-04-03") {
			b.Fatal("Good Friday open")
		}
	}
}
