// Package tickerdata is the ticker-data table: one row per ticker and trading
// day with the last price and the indicators computed from Polygon bars.
package tickerdata

import "time"

// Row is one item of ticker-data-{stage}.
type Row struct {
	// Ticker is the normalized symbol (HASH key).
	Ticker string
	// Timestamp is the 16:00 America/New_York close of the trading day AsOf,
	// in UTC (RANGE key, stored as RFC 3339). One row per ticker and trading
	// day: a retry overwrites instead of duplicating.
	Timestamp time.Time
	// AsOf is the New York trading date of the last bar, YYYY-MM-DD.
	AsOf string
	// Price is the last close.
	Price float64
	// RSI is RSI(14) (Wilder); nil with fewer than 15 closes.
	RSI *float64
	// MA50 is the mean of the last 50 closes; nil with fewer than 50 closes.
	MA50 *float64
	// Bars is the number of daily bars the indicators were computed from.
	Bars int
	// FetchedAt is when the bars were fetched.
	FetchedAt time.Time
	// Source names where the bars came from: "polygon" or "sandbox".
	Source string
}
