package config

import (
	"errors"
	"log/slog"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
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
	// DailyBarsTable and TickerDataTable serve the catch-up run: the day's
	// recorded state, and which rows of the day are stored (read only).
	DailyBarsTable, TickerDataTable string
}

// LoadProcessTickers reads the processTickers variables from lookup.
func LoadProcessTickers(lookup Lookup) (ProcessTickers, error) {
	e := NewEnv(lookup)
	c := ProcessTickers{
		Stage:                   e.Required(deploy.EnvStage),
		UserPortfoliosTable:     e.Required(deploy.EnvUserPortfoliosTable),
		PortfolioPositionsTable: e.Required(deploy.EnvPortfolioPositionsTable),
		DailyBarsTable:          e.Required(deploy.EnvDailyBarsTable),
		TickerDataTable:         e.Required(deploy.EnvTickerDataTable),
	}
	if e.Required(deploy.EnvTickerQueueURL) != "" {
		c.TickerQueueURL = e.URL(deploy.EnvTickerQueueURL, "")
	}
	c.TickerMessageGroups = e.Int(deploy.EnvTickerMessageGroups, deploy.DefaultTickerMessageGroups, 1, 100)
	c.LogLevel = e.LogLevel()
	return c, e.Err()
}

// ProcessTicker is the configuration of the processTicker function.
type ProcessTicker struct {
	Stage    string
	LogLevel slog.Level
	// TickerDataTable receives one row per ticker and trading day.
	TickerDataTable string
	// DailyBarsTable holds the stored daily history the rows are computed
	// from (docs/decisions/0002-stored-daily-history.md).
	DailyBarsTable string
	// PolygonBaseURL is the scheme and host of the Polygon (Massive) API.
	PolygonBaseURL string
	// PolygonCallsPerMinute paces the Polygon calls (0: unlimited).
	PolygonCallsPerMinute int
	// PolygonHistoryDays is how many calendar days of stored bars the
	// indicators are computed from, and a backfill requests, ending on the
	// trading day: at least 365, so that the indicators see about 250
	// trading days.
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
		Stage:                 e.Required(deploy.EnvStage),
		TickerDataTable:       e.Required(deploy.EnvTickerDataTable),
		DailyBarsTable:        e.Required(deploy.EnvDailyBarsTable),
		PolygonBaseURL:        e.URL(deploy.EnvPolygonBaseURL, deploy.DefaultPolygonBaseURL),
		PolygonCallsPerMinute: e.Int(deploy.EnvPolygonCallsPerMinute, deploy.DefaultPolygonCallsPerMinute, 0, 6000),
		PolygonHistoryDays:    e.Int(deploy.EnvPolygonHistoryDays, deploy.DefaultPolygonHistoryDays, 365, 3650),
		APIKeysSecretARN:      e.Optional(deploy.EnvAPIKeysSecretARN),
	}
	_, c.PolygonAPIKeySet = e.get(deploy.EnvPolygonAPIKey)
	def := 15 * time.Second
	if c.PolygonCallsPerMinute > 0 {
		def += time.Minute / time.Duration(c.PolygonCallsPerMinute)
	}
	c.RecordBudget = e.Duration(deploy.EnvTickerRecordBudget, def, time.Second, 15*time.Minute)
	if e.Optional(deploy.EnvTickerQueueURL) != "" {
		c.TickerQueueURL = e.URL(deploy.EnvTickerQueueURL, "")
	}
	if e.Optional(deploy.EnvTickerDLQURL) != "" {
		c.TickerDLQURL = e.URL(deploy.EnvTickerDLQURL, "")
	}
	switch {
	case e.Optional(deploy.EnvTickerQueueURL) != "" && e.Optional(deploy.EnvTickerDLQURL) == "":
		e.fail(deploy.EnvTickerDLQURL, "is required when TICKER_QUEUE_URL is set (both or neither)")
	case e.Optional(deploy.EnvTickerQueueURL) == "" && e.Optional(deploy.EnvTickerDLQURL) != "":
		e.fail(deploy.EnvTickerQueueURL, "is required when TICKER_DLQ_URL is set (both or neither)")
	}
	if c.LogLevel = e.LogLevel(); e.Err() != nil {
		return c, e.Err()
	}
	if !c.PolygonAPIKeySet && c.APIKeysSecretARN == "" {
		return c, errors.New("configuration: POLYGON_API_KEY or API_KEYS_SECRET_ARN must be set (the Polygon API key, or the secret holding it)")
	}
	return c, nil
}
