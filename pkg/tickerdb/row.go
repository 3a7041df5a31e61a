// Package tickerdb is the ticker-data table: one row per ticker and trading
// day with the last price and the indicators computed from the daily bars.
package tickerdb

import (
	"time"

	"github.com/zsmseven/backend/pkg/indicators"
)

// Row is one item of ticker-data-{stage}: the indicator snapshot of a
// ticker's last bar, stored as it is. Every number of the snapshot is
// stored under its indicators.Fields name (absent when the snapshot has
// none), so an indicator added to package indicators reaches the table and
// its readers without a change here.
type Row struct {
	// Ticker is the normalized symbol (HASH key).
	Ticker string
	// Timestamp is the 16:00 America/New_York close of the trading day AsOf,
	// in UTC (RANGE key, stored as RFC 3339). One row per ticker and trading
	// day: a retry overwrites instead of duplicating.
	Timestamp time.Time
	// Snapshot carries Price (the last close), AsOf (the New York trading
	// date of the last bar, YYYY-MM-DD), Bars (how many bars the numbers
	// were computed from) and every indicator.
	indicators.Snapshot
	// FetchedAt is when the bars were fetched.
	FetchedAt time.Time
	// Source names where the bars came from: "polygon" or "sandbox".
	Source string
	// Partial: computed while the ticker's window of history was still being
	// filled (an indicator that needs what is missing is absent); the row is
	// computed again once the fill completes. Stored as "partial": true.
	Partial bool
}
