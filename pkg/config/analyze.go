package config

import (
	"fmt"
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
	// ReservationsTable holds the pay-once reservations.
	ReservationsTable string
	// AnalysisQueueURL is the queue the fan-out sends one message per
	// portfolio to (the queue that triggers this same function).
	AnalysisQueueURL string
	// DefaultPortfolio is analyzed when the event names none.
	DefaultPortfolio string
	// Model is the analysis model: the provider deploy.EnvModelProvider names and
	// its settings.
	Model Model
	// Manager is who writes a portfolio's overview over the ticker scores:
	// deploy.ManagerModel or deploy.ManagerRules (deploy.VarAnalysisManager).
	Manager string
	// Reserve is kept free before the invocation deadline for the fallback
	// and the store (deploy.VarXAIReserve).
	Reserve time.Duration
	// APIKeysSecretARN is the stage's secret; "" locally.
	APIKeysSecretARN string
}

// Model is the configuration of the analysis model: its provider (the
// variables of deploy.ModelProvider) and the provider's settings.
type Model struct {
	Provider deploy.ModelProvider
	// URL is the full chat-completions URL.
	URL string
	// Name is the requested model.
	Name string
	// MaxCompletionTokens is the ceiling of each call's completion cap (the
	// cap itself scales with the call's work). It does not bound a
	// reasoning model's reasoning.
	MaxCompletionTokens int
	// ReasoningEffort is sent as reasoning_effort ("" when "omit"), to
	// models that accept it.
	ReasoningEffort string
	// AttemptTimeout bounds one HTTP attempt, so a stalled connection is
	// retried within the deadline.
	AttemptTimeout time.Duration
}

// LoadAnalyzePortfolio reads the analyzePortfolio variables from lookup.
// The API key itself is not read here: package secrets resolves it (the
// provider's key variable first, then the secret).
func LoadAnalyzePortfolio(lookup Lookup) (AnalyzePortfolio, error) {
	e := NewEnv(lookup)
	c := AnalyzePortfolio{
		Stage:                   e.VarString(deploy.VarStage),
		UserPortfoliosTable:     e.VarString(deploy.VarUserPortfoliosTable),
		PortfolioPositionsTable: e.VarString(deploy.VarPortfolioPositionsTable),
		TickerDataTable:         e.VarString(deploy.VarTickerDataTable),
		PortfolioAnalysesTable:  e.VarString(deploy.VarPortfolioAnalysesTable),
		ReservationsTable:       e.VarString(deploy.VarAnalysisReservationsTable),
		AnalysisQueueURL:        e.VarURL(deploy.VarAnalysisQueueURL),
		DefaultPortfolio:        e.VarString(deploy.VarDefaultPortfolio),
		Model:                   loadModel(e),
		Manager:                 e.VarEnum(deploy.VarAnalysisManager),
		Reserve:                 e.VarDuration(deploy.VarXAIReserve, 0),
		APIKeysSecretARN:        e.VarString(deploy.VarAPIKeysSecretARN),
	}
	if c.DefaultPortfolio == deploy.AllPortfolios {
		e.fail(deploy.EnvDefaultPortfolio, "must name one portfolio, not \"*\"")
	}
	c.LogLevel = e.LogLevel()
	return c, e.Err()
}

// loadModel reads deploy.EnvModelProvider, then that provider's variables. The
// provider is looked up in the contract's list (not the variable's values
// as listed at start-up), so a provider added to deploy.ModelProviders is
// chosen by the same path.
func loadModel(e *Env) Model {
	name := e.String(deploy.EnvModelProvider, deploy.DefaultModelProvider)
	p, ok := deploy.ModelProviderByName(name)
	if !ok {
		e.fail(deploy.EnvModelProvider, "must be one of %v, got %q", providerNames(), name)
		return Model{}
	}
	m := Model{
		Provider:            p,
		URL:                 e.VarURL(p.URL),
		Name:                e.VarString(p.Model),
		MaxCompletionTokens: e.VarInt(p.MaxCompletionTokens),
		ReasoningEffort:     e.VarEnum(p.ReasoningEffort),
		AttemptTimeout:      e.VarDuration(p.AttemptTimeout, 0),
	}
	if m.ReasoningEffort == deploy.ReasoningEffortOmit {
		m.ReasoningEffort = ""
	}
	return m
}

func providerNames() string {
	var names []string
	for _, p := range deploy.ModelProviders {
		names = append(names, p.Name)
	}
	return fmt.Sprint(names)
}
