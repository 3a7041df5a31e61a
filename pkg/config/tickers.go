package config

import (
	"fmt"
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
		Stage:                   e.VarString(deploy.VarStage),
		UserPortfoliosTable:     e.VarString(deploy.VarUserPortfoliosTable),
		PortfolioPositionsTable: e.VarString(deploy.VarPortfolioPositionsTable),
		DailyBarsTable:          e.VarString(deploy.VarDailyBarsTable),
		TickerDataTable:         e.VarString(deploy.VarTickerDataTable),
	}
	// Required here: processTickers exists to send to it.
	if e.Required(deploy.EnvTickerQueueURL) != "" {
		c.TickerQueueURL = e.VarURL(deploy.VarTickerQueueURL)
	}
	c.TickerMessageGroups = e.VarInt(deploy.VarTickerMessageGroups)
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
	// from (docs/decisions/0004-raw-bars-and-a-ledger.md).
	DailyBarsTable string
	// PolygonBaseURL is the scheme and host of the Polygon (Massive) API.
	PolygonBaseURL string
	// PolygonCallsPerMinute paces the Polygon calls (0: unlimited).
	PolygonCallsPerMinute int
	// RecordBudget is the least remaining time needed to start another
	// record (deploy.VarTickerRecordBudget; default: one pacing interval plus 15 s).
	RecordBudget time.Duration
	// APIKeysSecretARN is the stage's secret; "" locally.
	APIKeysSecretARN string
	// PolygonAPIKeySet reports that deploy.EnvPolygonAPIKey is set in the
	// environment (it then takes precedence over the secret). The key itself
	// is read through package secrets and never kept in the configuration.
	PolygonAPIKeySet bool
	// TickerQueueURL and TickerDLQURL (deploy.VarTickerQueueURL, deploy.VarTickerDLQURL;
	// both or neither) are the queue processTicker consumes and its
	// dead-letter queue. When set, a record of a FIFO batch that fails
	// transiently is re-queued to the queue's tail (or, after its last
	// attempt, sent to the dead-letter queue) instead of being handed back.
	TickerQueueURL, TickerDLQURL string
	// TickerMessageGroups is the number of FIFO message groups
	// (deploy.VarTickerMessageGroups): the fill a day message queues goes to
	// its tickers' groups, as processTickers sends them.
	TickerMessageGroups int
}

// LoadProcessTicker reads the processTicker variables from lookup. Either
// The Polygon key or the secret holding it must be set.
func LoadProcessTicker(lookup Lookup) (ProcessTicker, error) {
	e := NewEnv(lookup)
	c := ProcessTicker{
		Stage:                 e.VarString(deploy.VarStage),
		TickerDataTable:       e.VarString(deploy.VarTickerDataTable),
		DailyBarsTable:        e.VarString(deploy.VarDailyBarsTable),
		PolygonBaseURL:        e.VarURL(deploy.VarPolygonBaseURL),
		PolygonCallsPerMinute: e.VarInt(deploy.VarPolygonCallsPerMinute),
		APIKeysSecretARN:      e.VarString(deploy.VarAPIKeysSecretARN),
	}
	_, c.PolygonAPIKeySet = e.get(deploy.EnvPolygonAPIKey)
	def := 15 * time.Second
	if c.PolygonCallsPerMinute > 0 {
		def += time.Minute / time.Duration(c.PolygonCallsPerMinute)
	}
	c.RecordBudget = e.VarDuration(deploy.VarTickerRecordBudget, def)
	c.TickerQueueURL = e.VarURL(deploy.VarTickerQueueURL)
	c.TickerDLQURL = e.VarURL(deploy.VarTickerDLQURL)
	c.TickerMessageGroups = e.VarInt(deploy.VarTickerMessageGroups)
	switch {
	case e.Optional(deploy.EnvTickerQueueURL) != "" && e.Optional(deploy.EnvTickerDLQURL) == "":
		e.fail(deploy.EnvTickerDLQURL, "is required when "+deploy.EnvTickerQueueURL+" is set (both or neither)")
	case e.Optional(deploy.EnvTickerQueueURL) == "" && e.Optional(deploy.EnvTickerDLQURL) != "":
		e.fail(deploy.EnvTickerQueueURL, "is required when "+deploy.EnvTickerDLQURL+" is set (both or neither)")
	}
	if c.LogLevel = e.LogLevel(); e.Err() != nil {
		return c, e.Err()
	}
	if !c.PolygonAPIKeySet && c.APIKeysSecretARN == "" {
		return c, fmt.Errorf("configuration: %s or %s must be set (the Polygon API key, or the secret holding it)", deploy.EnvPolygonAPIKey, deploy.EnvAPIKeysSecretARN)
	}
	return c, nil
}
