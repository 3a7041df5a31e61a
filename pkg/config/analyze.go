package config

import (
	"log/slog"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
)

// ReasoningEfforts are the accepted values of XAI_REASONING_EFFORT: the
// levels xAI's reasoning models take ("none" disables reasoning on models
// that support it), and "omit" to send no reasoning_effort at all.
var ReasoningEfforts = []string{"low", "medium", "high", "none", ReasoningEffortOmit}

// ReasoningEffortOmit is the XAI_REASONING_EFFORT value that sends none.
const ReasoningEffortOmit = "omit"

// AnalyzePortfolio is the configuration of the analyzePortfolio function.
type AnalyzePortfolio struct {
	Stage    string
	LogLevel slog.Level
	// Shared tables (read) and our tables.
	UserPortfoliosTable     string
	PortfolioPositionsTable string
	TickerDataTable         string
	PortfolioAnalysesTable  string
	// ReservationsTable holds the pay-once reservations.
	ReservationsTable string
	// AnalysisQueueURL is the queue the fan-out sends one message per
	// portfolio to (the queue that triggers this same function).
	AnalysisQueueURL string
	// DefaultPortfolio is analyzed when the event names none.
	DefaultPortfolio string
	// XAIAPIURL is the full chat completions URL.
	XAIAPIURL string
	// XAIModel is the requested model.
	XAIModel string
	// XAIMaxCompletionTokens is the ceiling of each call's completion cap
	// (the cap itself scales with the call's positions). It does not bound
	// a reasoning model's reasoning.
	XAIMaxCompletionTokens int
	// XAIReasoningEffort is sent as reasoning_effort ("" when "omit"), to
	// models that accept it.
	XAIReasoningEffort string
	// XAIAttemptTimeout bounds one HTTP attempt (XAI_ATTEMPT_TIMEOUT,
	// default 120s), so a stalled connection is retried within the deadline.
	XAIAttemptTimeout time.Duration
	// XAIReserve is kept free before the invocation deadline for the
	// fallback and the store (XAI_RESERVE, default 15s).
	XAIReserve time.Duration
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
		ReservationsTable:       e.Required(deploy.EnvAnalysisReservationsTable),
		DefaultPortfolio:        e.String(deploy.EnvDefaultPortfolio, deploy.DefaultPortfolio),
		XAIAPIURL:               e.URL(deploy.EnvXAIAPIURL, deploy.DefaultXAIAPIURL),
		XAIModel:                e.String(deploy.EnvXAIModel, deploy.DefaultXAIModel),
		XAIMaxCompletionTokens:  e.Int(deploy.EnvXAIMaxCompletionTokens, deploy.DefaultXAIMaxCompletionTokens, 256, 1_000_000),
		XAIReasoningEffort:      e.OneOf(deploy.EnvXAIReasoningEffort, deploy.DefaultXAIReasoningEffort, ReasoningEfforts...),
		XAIAttemptTimeout:       e.Duration(deploy.EnvXAIAttemptTimeout, deploy.DefaultXAIAttemptTimeout, time.Second, 15*time.Minute),
		XAIReserve:              e.Duration(deploy.EnvXAIReserve, deploy.DefaultXAIReserve, 0, 5*time.Minute),
		APIKeysSecretARN:        e.Optional(deploy.EnvAPIKeysSecretARN),
	}
	if e.Required(deploy.EnvAnalysisQueueURL) != "" {
		c.AnalysisQueueURL = e.URL(deploy.EnvAnalysisQueueURL, "")
	}
	if c.XAIReasoningEffort == ReasoningEffortOmit {
		c.XAIReasoningEffort = ""
	}
	if c.DefaultPortfolio == "*" {
		e.fail(deploy.EnvDefaultPortfolio, "must name one portfolio, not \"*\"")
	}
	c.LogLevel = e.LogLevel()
	return c, e.Err()
}
