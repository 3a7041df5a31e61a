package deploy

import "time"

// Environment variables of the functions: the stack sets them (infra), the
// functions read them (package config), the local stack sets them for local
// runs (internal/devstack), and .env.example documents them.
const (
	EnvStage    = "STAGE"
	EnvLogLevel = "LOG_LEVEL"

	EnvUserPortfoliosTable     = "USER_PORTFOLIOS_TABLE"
	EnvPortfolioPositionsTable = "PORTFOLIO_POSITIONS_TABLE"
	EnvTickerDataTable         = "TICKER_DATA_TABLE"
	EnvDailyBarsTable          = "DAILY_BARS_TABLE"
	EnvPortfolioAnalysesTable  = "PORTFOLIO_ANALYSES_TABLE"
	// EnvAnalysisReservationsTable names the table of pay-once reservations
	// (AnalysisReservations).
	EnvAnalysisReservationsTable = "ANALYSIS_RESERVATIONS_TABLE"

	EnvTickerQueueURL      = "TICKER_QUEUE_URL"
	EnvTickerDLQURL        = "TICKER_DLQ_URL"
	EnvTickerMessageGroups = "TICKER_MESSAGE_GROUPS"
	EnvTickerRecordBudget  = "TICKER_RECORD_BUDGET"

	EnvPolygonBaseURL        = "POLYGON_BASE_URL"
	EnvPolygonCallsPerMinute = "POLYGON_CALLS_PER_MINUTE"

	// EnvModelProvider chooses the analysis model's provider (ModelProviders).
	EnvModelProvider          = "MODEL_PROVIDER"
	EnvXAIAPIURL              = "XAI_API_URL"
	EnvXAIModel               = "XAI_MODEL"
	EnvXAIMaxCompletionTokens = "XAI_MAX_COMPLETION_TOKENS"
	EnvXAIReserve             = "XAI_RESERVE"
	EnvXAIReasoningEffort     = "XAI_REASONING_EFFORT"
	EnvXAIAttemptTimeout      = "XAI_ATTEMPT_TIMEOUT"
	EnvDefaultPortfolio       = "DEFAULT_PORTFOLIO"
	// EnvAnalysisManager chooses who writes a portfolio's overview
	// (ManagerModel, ManagerRules).
	EnvAnalysisManager = "ANALYSIS_MANAGER"
	// EnvAnalysisQueueURL is the analysis queue analyzePortfolio's fan-out
	// sends to (AnalysisQueueName).
	EnvAnalysisQueueURL = "ANALYSIS_QUEUE_URL"

	// EnvAPIKeysSecretARN names the stage's secret (SecretName) by ARN.
	EnvAPIKeysSecretARN = "API_KEYS_SECRET_ARN"
	// The API keys themselves: only ever in the secret on AWS; locally in
	// the environment, where they take precedence over the secret.
	EnvPolygonAPIKey = "POLYGON_API_KEY"
	EnvXAIAPIKey     = "XAI_API_KEY"
)

// Defaults the functions apply when a variable is unset, and the values the
// stack sets unless its context overrides them.
const (
	DefaultLogLevel = "info"

	// DefaultTickerMessageGroups is one FIFO message group: one consumer at a
	// time (docs/decisions/0001-queue-concurrency.md).
	DefaultTickerMessageGroups = 1

	// DefaultPolygonBaseURL is Polygon's (now also Massive's) API host.
	DefaultPolygonBaseURL = "https://api.polygon.io"
	// DefaultPolygonCallsPerMinute is the free plan's rate; 0 means unlimited.
	DefaultPolygonCallsPerMinute = 5

	// DefaultModelProvider is the analysis model's provider unless the
	// stage's context (modelProvider) chooses another.
	DefaultModelProvider = "xai"

	DefaultXAIAPIURL = "https://api.x.ai/v1/chat/completions"
	DefaultXAIModel  = "grok-4.3"
	// DefaultXAIMaxCompletionTokens is the ceiling of the completion cap;
	// each call asks for less, scaled with its number of positions
	// (docs/analysis.md). It bounds the visible answer only: a reasoning
	// model's reasoning is bounded by the reasoning effort.
	DefaultXAIMaxCompletionTokens = 16000
	DefaultXAIReserve             = 15 * time.Second
	// DefaultXAIReasoningEffort bounds a reasoning model's thinking; "omit"
	// sends no reasoning_effort (models that reject it never get it).
	DefaultXAIReasoningEffort = "low"
	// DefaultXAIAttemptTimeout bounds one HTTP attempt: reasoning answers
	// take 20-60 s at low effort, so 120 s is generous, and a stalled
	// connection still leaves 165 s of the 300 s invocation (after the 15 s
	// reserve) for a retry.
	DefaultXAIAttemptTimeout = 120 * time.Second

	// DefaultAnalysisConcurrency is the analysis queue's event-source
	// MaxConcurrency: portfolios analyzed at once. Sized to xAI's rate
	// limits and the night: 10 concurrent answers of 20-60 s are 10-30
	// requests a minute, and 1,000 portfolios at 30 s take 1,000 × 30 s / 10
	// = 50 minutes (docs/decisions/0003-analysis-fan-out.md).
	DefaultAnalysisConcurrency = 10
	// AnalysisMaxReceiveCount is the analysis queue's redrive
	// maxReceiveCount: receives before a message moves to the DLQ.
	AnalysisMaxReceiveCount = 5
	// AnalysisVisibilityFactor: the analysis queue hides a received message
	// for this many times analyzePortfolio's timeout (AWS's guidance).
	AnalysisVisibilityFactor = 6

	// ManagerModel and ManagerRules are ANALYSIS_MANAGER's values (CDK
	// context analysisManager): the portfolio manager — summary, overall
	// risk, concentration flags, top actions — is the model, one call per
	// portfolio over the stored ticker scores, or the deterministic rules,
	// no call at all. The tickers are scored by the model either way.
	ManagerModel = "model"
	ManagerRules = "rules"
	// DefaultAnalysisManager is the model (docs/decisions/0005-analysis-in-two-levels.md).
	DefaultAnalysisManager = ManagerModel

	// DefaultPortfolio is the portfolio analyzed when an event names none.
	DefaultPortfolio = "ZSM Seven"
	// AllPortfolios, as a portfolio name, means every portfolio: the
	// analysis fans out, one message per portfolio on the analysis queue.
	AllPortfolios = "*"
	// DefaultScheduledAnalysis is what the nightly analysis schedule names
	// (context analysisPortfolio): every portfolio, every night
	// (docs/decisions/0003-analysis-fan-out.md). A single name, such as
	// DefaultPortfolio, analyzes just that one in the scheduled invocation.
	DefaultScheduledAnalysis = AllPortfolios
)

// TableEnv is the environment naming a stage's tables, as the stack sets it
// (STAGE and every *_TABLE variable): what the local stack and `zsm invoke
// --stage` start from. Each function reads the variables it needs.
func TableEnv(stage string) map[string]string {
	return map[string]string{
		EnvStage:                     stage,
		EnvUserPortfoliosTable:       UserPortfolios.Name(stage),
		EnvPortfolioPositionsTable:   PortfolioPositions.Name(stage),
		EnvTickerDataTable:           TickerData.Name(stage),
		EnvDailyBarsTable:            DailyBars.Name(stage),
		EnvPortfolioAnalysesTable:    PortfolioAnalyses.Name(stage),
		EnvAnalysisReservationsTable: AnalysisReservations.Name(stage),
	}
}
