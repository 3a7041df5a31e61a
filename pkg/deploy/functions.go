package deploy

import (
	"strings"
	"time"
)

// Function is one of the service's Lambda functions.
type Function struct {
	// Name is the logical name, e.g. "processTicker"; the deployed function
	// is FunctionName(stage).
	Name string
	// Dir is the directory of its main package under lambdas/ and of its
	// built bootstrap under dist/ (the Makefile's FUNCTIONS), e.g. "processticker".
	Dir string
	// Description is the deployed function's description.
	Description string
	// Timeout is the deployed timeout; local runs give each invocation the
	// same deadline.
	Timeout time.Duration
	// MemoryMB is the deployed memory size.
	MemoryMB int
}

// Vars are the environment variables the function reads (package config
// reads exactly these: a test holds it to them).
func (f Function) Vars() []Var { return functionVars[f.Name] }

// FunctionName is the deployed name, e.g. "zsm-processTicker-dev".
func (f Function) FunctionName(stage string) string { return "zsm-" + f.Name + "-" + stage }

// LogGroupName is the function's own log group.
func (f Function) LogGroupName(stage string) string { return "/aws/lambda/" + f.FunctionName(stage) }

// The three functions.
var (
	ProcessTickers = Function{
		Name: "processTickers", Dir: "processtickers",
		Description: "Scans the portfolio tables and queues one message per ticker",
		Timeout:     60 * time.Second, MemoryMB: 256,
	}
	// ProcessTicker's timeout is sized with the ticker queue's batch and the
	// Polygon pacing (docs/decisions/0001-queue-concurrency.md).
	ProcessTicker = Function{
		Name: "processTicker", Dir: "processticker",
		Description: "Keeps the stored daily bars complete from Polygon (one grouped call per session, a splits ledger), computes the indicators, stores one row per ticker",
		Timeout:     180 * time.Second, MemoryMB: 256,
	}
	AnalyzePortfolio = Function{
		Name: "analyzePortfolio", Dir: "analyzeportfolio",
		Description: "Scores each held ticker once a night with xAI Grok, then analyzes each portfolio over those scores, and stores it",
		Timeout:     300 * time.Second, MemoryMB: 256,
	}
)

// functionVars are the variables each function reads, by its Name.
var functionVars = map[string][]Var{
	ProcessTickers.Name: []Var{VarStage, VarLogLevel, VarUserPortfoliosTable, VarPortfolioPositionsTable, VarTickerQueueURL, VarTickerMessageGroups,
		// The catch-up run reads the day's state and which rows of the day are stored.
		VarDailyBarsTable, VarTickerDataTable},
	ProcessTicker.Name: []Var{VarStage, VarLogLevel, VarTickerDataTable, VarDailyBarsTable,
		VarPolygonBaseURL, VarPolygonCallsPerMinute, VarTickerRecordBudget,
		VarAPIKeysSecretARN, VarPolygonAPIKey, VarTickerQueueURL, VarTickerDLQURL,
		// The fill a day message queues goes to the same groups as the night.
		VarTickerMessageGroups},
	AnalyzePortfolio.Name: append([]Var{VarStage, VarLogLevel, VarUserPortfoliosTable, VarPortfolioPositionsTable, VarTickerDataTable,
		VarPortfolioAnalysesTable, VarAnalysisReservationsTable, VarAnalysisQueueURL, VarDefaultPortfolio,
		VarModelProvider, VarAnalysisManager, VarXAIReserve, VarAPIKeysSecretARN}, providerVars()...),
}

// Functions lists the three functions in pipeline order.
var Functions = []Function{ProcessTickers, ProcessTicker, AnalyzePortfolio}

// FunctionByName finds a function by its Name or Dir, case-insensitively.
func FunctionByName(name string) (Function, bool) {
	for _, f := range Functions {
		if strings.EqualFold(f.Name, name) || strings.EqualFold(f.Dir, name) {
			return f, true
		}
	}
	return Function{}, false
}

// providerVars are the variables of every model provider: analyzePortfolio
// reads those of the provider MODEL_PROVIDER names.
func providerVars() []Var {
	var vs []Var
	for _, p := range ModelProviders {
		vs = append(vs, p.Vars()...)
	}
	return vs
}
