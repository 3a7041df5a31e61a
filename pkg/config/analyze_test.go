package config_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/deploy"
)

func analyzeEnv(over map[string]string) config.Lookup {
	m := map[string]string{
		"STAGE": "dev", "USER_PORTFOLIOS_TABLE": "user-portfolios-dev", "PORTFOLIO_POSITIONS_TABLE": "portfolio-positions-dev",
		"TICKER_DATA_TABLE": "ticker-data-dev", "PORTFOLIO_ANALYSES_TABLE": "portfolio-analyses-dev",
		"ANALYSIS_RESERVATIONS_TABLE": "analysis-reservations-dev",
		"ANALYSIS_QUEUE_URL":          "https://sqs.us-east-1.amazonaws.com/123456789012/portfolio-analysis-queue-dev",
	}
	for k, v := range over {
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadAnalyzePortfolioDefaults(t *testing.T) {
	c, err := config.LoadAnalyzePortfolio(analyzeEnv(nil))
	require.NoError(t, err)
	assert.Equal(t, config.AnalyzePortfolio{
		Stage: "dev", LogLevel: slog.LevelInfo, UserPortfoliosTable: "user-portfolios-dev", PortfolioPositionsTable: "portfolio-positions-dev",
		TickerDataTable: "ticker-data-dev", PortfolioAnalysesTable: "portfolio-analyses-dev", ReservationsTable: "analysis-reservations-dev",
		AnalysisQueueURL: "https://sqs.us-east-1.amazonaws.com/123456789012/portfolio-analysis-queue-dev", DefaultPortfolio: "ZSM Seven",
		Model: config.Model{Provider: deploy.XAI, URL: "https://api.x.ai/v1/chat/completions", Name: "grok-4.3", MaxCompletionTokens: 16000,
			ReasoningEffort: "low", AttemptTimeout: 120 * time.Second},
		Manager: "model", Reserve: 15 * time.Second,
	}, c)
}

// ANALYSIS_MANAGER chooses who writes the overview; another value is one
// line naming the variable.
func TestLoadAnalyzePortfolioManager(t *testing.T) {
	c, err := config.LoadAnalyzePortfolio(analyzeEnv(map[string]string{"ANALYSIS_MANAGER": "rules"}))
	require.NoError(t, err)
	assert.Equal(t, "rules", c.Manager)
	_, err = config.LoadAnalyzePortfolio(analyzeEnv(map[string]string{"ANALYSIS_MANAGER": "llm"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ANALYSIS_MANAGER")
}

func TestLoadAnalyzePortfolioOverrides(t *testing.T) {
	c, err := config.LoadAnalyzePortfolio(analyzeEnv(map[string]string{"XAI_API_URL": "http://127.0.0.1:9/v1/chat/completions", "XAI_MODEL": "grok-4.3-mini",
		"XAI_MAX_COMPLETION_TOKENS": "2000", "DEFAULT_PORTFOLIO": "Other", "LOG_LEVEL": "debug", "API_KEYS_SECRET_ARN": "arn:aws:secretsmanager:x"}))
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9/v1/chat/completions", c.Model.URL)
	assert.Equal(t, "grok-4.3-mini", c.Model.Name)
	assert.Equal(t, 2000, c.Model.MaxCompletionTokens)
	assert.Equal(t, "Other", c.DefaultPortfolio)
	assert.Equal(t, slog.LevelDebug, c.LogLevel)
	assert.Equal(t, "arn:aws:secretsmanager:x", c.APIKeysSecretARN)

	c, err = config.LoadAnalyzePortfolio(analyzeEnv(map[string]string{"XAI_REASONING_EFFORT": "omit", "XAI_ATTEMPT_TIMEOUT": "45s"}))
	require.NoError(t, err)
	assert.Empty(t, c.Model.ReasoningEffort, "omit sends no reasoning_effort")
	assert.Equal(t, 45*time.Second, c.Model.AttemptTimeout)
	c, err = config.LoadAnalyzePortfolio(analyzeEnv(map[string]string{"XAI_REASONING_EFFORT": "none"}))
	require.NoError(t, err)
	assert.Equal(t, "none", c.Model.ReasoningEffort, "none is a level xAI accepts (no reasoning)")
}

func TestLoadAnalyzePortfolioErrors(t *testing.T) {
	cases := map[string]struct {
		over map[string]string
		want string
	}{
		"missing table":   {map[string]string{"TICKER_DATA_TABLE": ""}, "TICKER_DATA_TABLE is required"},
		"bad url":         {map[string]string{"XAI_API_URL": "api.x.ai"}, "XAI_API_URL must be an absolute"},
		"bad tokens":      {map[string]string{"XAI_MAX_COMPLETION_TOKENS": "lots"}, "XAI_MAX_COMPLETION_TOKENS must be an integer"},
		"bad level":       {map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		"no queue":        {map[string]string{"ANALYSIS_QUEUE_URL": ""}, "ANALYSIS_QUEUE_URL is required"},
		"bad queue":       {map[string]string{"ANALYSIS_QUEUE_URL": "sqs/queue"}, "ANALYSIS_QUEUE_URL must be an absolute"},
		"no reservations": {map[string]string{"ANALYSIS_RESERVATIONS_TABLE": ""}, "ANALYSIS_RESERVATIONS_TABLE is required"},
		"bad effort":      {map[string]string{"XAI_REASONING_EFFORT": "max"}, "XAI_REASONING_EFFORT must be one of low, medium, high, none, omit"},
		"bad attempt":     {map[string]string{"XAI_ATTEMPT_TIMEOUT": "100ms"}, "XAI_ATTEMPT_TIMEOUT must be between"},
		"star default":    {map[string]string{"DEFAULT_PORTFOLIO": "*"}, "DEFAULT_PORTFOLIO must name one portfolio"},
		"bad provider":    {map[string]string{"MODEL_PROVIDER": "openai"}, "MODEL_PROVIDER must be one of [xai]"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := config.LoadAnalyzePortfolio(analyzeEnv(tc.over))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}
