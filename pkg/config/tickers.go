package config

import (
	"errors"
	"log/slog"
	"time"
)

// ProcessTickers is the configuration of the processTickers function.
type ProcessTickers struct {
	Stage    string
	LogLevel slog.Level
	// UserPortfoliosTable and PortfolioPositionsTable are the shared tables
	// scanned for symbols (read only).
	UserPortfoliosTable     string
	PortfolioPositionsTable string
	// TickerQueueURL is the queue the messages go to; a URL ending in
	// ".fifo" is a FIFO queue.
	TickerQueueURL string
	// TickerMessageGroups is the number of FIFO message groups (1: one
	// consumer at a time).
	TickerMessageGroups int
}

// LoadProcessTickers reads the processTickers variables from lookup.
func LoadProcessTickers(lookup Lookup) (ProcessTickers, error) {
	e := NewEnv(lookup)
	c := ProcessTickers{
		Stage:                   e.Required("STAGE"),
		UserPortfoliosTable:     e.Required("USER_PORTFOLIOS_TABLE"),
		PortfolioPositionsTable: e.Required("PORTFOLIO_POSITIONS_TABLE"),
	}
	if e.Required("TICKER_QUEUE_URL") != "" {
		c.TickerQueueURL = e.URL("TICKER_QUEUE_URL", "")
	}
	c.TickerMessageGroups = e.Int("TICKER_MESSAGE_GROUPS", 1, 1, 100)
	c.LogLevel = e.LogLevel()
	return c, e.Err()
}

// ProcessTicker is the configuration of the processTicker function.
type ProcessTicker struct {
	Stage    string
	LogLevel slog.Level
	// TickerDataTable receives one row per ticker and trading day.
	TickerDataTable string
	// PolygonBaseURL is the scheme and host of the Polygon (Massive) API.
	PolygonBaseURL string
	// PolygonCallsPerMinute paces the Polygon calls (0: unlimited).
	PolygonCallsPerMinute int
	// PolygonHistoryDays is how many calendar days of bars are requested,
	// ending today (New York): at least 365, so that the indicators see
	// about 250 trading days.
	PolygonHistoryDays int
	// RecordBudget is the least remaining time needed to start another
	// record (TICKER_RECORD_BUDGET; default: one pacing interval plus 15 s).
	RecordBudget time.Duration
	// APIKeysSecretARN is the stage's secret; "" locally.
	APIKeysSecretARN string
	// PolygonAPIKeySet reports that POLYGON_API_KEY is set in the
	// environment (it then takes precedence over the secret). The key itself
	// is read through package secrets and never kept in the configuration.
	PolygonAPIKeySet bool
	// TickerQueueURL and TickerDLQURL (TICKER_QUEUE_URL, TICKER_DLQ_URL;
	// both or neither) are the queue processTicker consumes and its
	// dead-letter queue. When set, a record of a FIFO batch that fails
	// transiently is re-queued to the queue's tail (or, after its last
	// attempt, sent to the dead-letter queue) instead of being handed back.
	TickerQueueURL, TickerDLQURL string
}

// LoadProcessTicker reads the processTicker variables from lookup. Either
// POLYGON_API_KEY or API_KEYS_SECRET_ARN must be set.
func LoadProcessTicker(lookup Lookup) (ProcessTicker, error) {
	e := NewEnv(lookup)
	c := ProcessTicker{
		Stage:                 e.Required("STAGE"),
		TickerDataTable:       e.Required("TICKER_DATA_TABLE"),
		PolygonBaseURL:        e.URL("POLYGON_BASE_URL", "https://api.polygon.io"),
		PolygonCallsPerMinute: e.Int("POLYGON_CALLS_PER_MINUTE", 5, 0, 6000),
		PolygonHistoryDays:    e.Int("POLYGON_HISTORY_DAYS", 400, 365, 3650),
		APIKeysSecretARN:      e.Optional("API_KEYS_SECRET_ARN"),
	}
	_, c.PolygonAPIKeySet = e.get("POLYGON_API_KEY")
	def := 15 * time.Second
	if c.PolygonCallsPerMinute > 0 {
		def += time.Minute / time.Duration(c.PolygonCallsPerMinute)
	}
	c.RecordBudget = e.Duration("TICKER_RECORD_BUDGET", def, time.Second, 15*time.Minute)
	if e.Optional("TICKER_QUEUE_URL") != "" {
		c.TickerQueueURL = e.URL("TICKER_QUEUE_URL", "")
	}
	if e.Optional("TICKER_DLQ_URL") != "" {
		c.TickerDLQURL = e.URL("TICKER_DLQ_URL", "")
	}
	switch {
	case e.Optional("TICKER_QUEUE_URL") != "" && e.Optional("TICKER_DLQ_URL") == "":
		e.fail("TICKER_DLQ_URL", "is required when TICKER_QUEUE_URL is set (both or neither)")
	case e.Optional("TICKER_QUEUE_URL") == "" && e.Optional("TICKER_DLQ_URL") != "":
		e.fail("TICKER_QUEUE_URL", "is required when TICKER_DLQ_URL is set (both or neither)")
	}
	if c.LogLevel = e.LogLevel(); e.Err() != nil {
		return c, e.Err()
	}
	if !c.PolygonAPIKeySet && c.APIKeysSecretARN == "" {
		return c, errors.New("configuration: POLYGON_API_KEY or API_KEYS_SECRET_ARN must be set (the Polygon API key, or the secret holding it)")
	}
	return c, nil
}
