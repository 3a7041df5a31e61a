package config

import (
	"log/slog"
	"time"
)

// AnalyzePortfolio is the configuration of the analyzePortfolio function.
type AnalyzePortfolio struct {
	Stage    string
	LogLevel slog.Level
	// Shared tables (read) and our tables.
	UserPortfoliosTable     string
	PortfolioPositionsTable string
	TickerDataTable         string
	PortfolioAnalysesTable  string
	// DefaultPortfolio is analyzed when the event names none.
	DefaultPortfolio string
	// XAIAPIURL is the full chat completions URL.
	XAIAPIURL string
	// XAIModel is the requested model.
	XAIModel string
	// XAIMaxCompletionTokens caps each answer (reasoning included).
	XAIMaxCompletionTokens int
	// XAIReserve is kept free before the invocation deadline for the
	// fallback and the store (XAI_RESERVE, default 15s).
	XAIReserve time.Duration
	// PortfolioBudget is the least remaining time to start another
	// portfolio in "*" mode (ANALYSIS_PORTFOLIO_BUDGET, default 90s).
	PortfolioBudget time.Duration
	// APIKeysSecretARN is the stage's secret; "" locally.
	APIKeysSecretARN string
}

// LoadAnalyzePortfolio reads the analyzePortfolio variables from lookup.
// The API key itself is not read here: package secrets resolves it
// (XAI_API_KEY first, then the secret).
func LoadAnalyzePortfolio(lookup Lookup) (AnalyzePortfolio, error) {
	e := NewEnv(lookup)
	c := AnalyzePortfolio{
		Stage:                   e.Required("STAGE"),
		UserPortfoliosTable:     e.Required("USER_PORTFOLIOS_TABLE"),
		PortfolioPositionsTable: e.Required("PORTFOLIO_POSITIONS_TABLE"),
		TickerDataTable:         e.Required("TICKER_DATA_TABLE"),
		PortfolioAnalysesTable:  e.Required("PORTFOLIO_ANALYSES_TABLE"),
		DefaultPortfolio:        e.String("DEFAULT_PORTFOLIO", "ZSM Seven"),
		XAIAPIURL:               e.URL("XAI_API_URL", "https://api.x.ai/v1/chat/completions"),
		XAIModel:                e.String("XAI_MODEL", "grok-4.3"),
		XAIMaxCompletionTokens:  e.Int("XAI_MAX_COMPLETION_TOKENS", 8000, 256, 1_000_000),
		XAIReserve:              e.Duration("XAI_RESERVE", 15*time.Second, 0, 5*time.Minute),
		PortfolioBudget:         e.Duration("ANALYSIS_PORTFOLIO_BUDGET", 90*time.Second, time.Second, 15*time.Minute),
		APIKeysSecretARN:        e.Optional("API_KEYS_SECRET_ARN"),
	}
	c.LogLevel = e.LogLevel()
	return c, e.Err()
}
