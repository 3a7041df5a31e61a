package config

import (
	"log/slog"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
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
		Stage:                   e.Required(deploy.EnvStage),
		UserPortfoliosTable:     e.Required(deploy.EnvUserPortfoliosTable),
		PortfolioPositionsTable: e.Required(deploy.EnvPortfolioPositionsTable),
		TickerDataTable:         e.Required(deploy.EnvTickerDataTable),
		PortfolioAnalysesTable:  e.Required(deploy.EnvPortfolioAnalysesTable),
		DefaultPortfolio:        e.String(deploy.EnvDefaultPortfolio, deploy.DefaultPortfolio),
		XAIAPIURL:               e.URL(deploy.EnvXAIAPIURL, deploy.DefaultXAIAPIURL),
		XAIModel:                e.String(deploy.EnvXAIModel, deploy.DefaultXAIModel),
		XAIMaxCompletionTokens:  e.Int(deploy.EnvXAIMaxCompletionTokens, deploy.DefaultXAIMaxCompletionTokens, 256, 1_000_000),
		XAIReserve:              e.Duration(deploy.EnvXAIReserve, deploy.DefaultXAIReserve, 0, 5*time.Minute),
		PortfolioBudget:         e.Duration(deploy.EnvPortfolioBudget, deploy.DefaultPortfolioBudget, time.Second, 15*time.Minute),
		APIKeysSecretARN:        e.Optional(deploy.EnvAPIKeysSecretARN),
	}
	c.LogLevel = e.LogLevel()
	return c, e.Err()
}
