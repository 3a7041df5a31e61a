package deploy

import (
	"slices"
	"strconv"
)

// Kind is the syntax of a variable's value.
type Kind string

// The kinds of values the functions read.
const (
	// KindString is any text.
	KindString Kind = "string"
	// KindInt is a decimal integer within [Min, Max].
	KindInt Kind = "int"
	// KindDuration is a Go duration ("30s") within [Min, Max].
	KindDuration Kind = "duration"
	// KindURL is an absolute http(s) URL without credentials or query.
	KindURL Kind = "url"
	// KindEnum is one of Values.
	KindEnum Kind = "enum"
)

// Origin says where a variable's value comes from, on AWS and locally.
type Origin string

// The origins of the variables.
const (
	// FromStack: the stack derives the value from what it creates (the
	// stage, a table's name, a queue's URL, the secret's ARN); the local
	// stack sets its local counterpart. A host's value is never taken.
	FromStack Origin = "stack"
	// Setting: a tunable. The stack sets its default, or the value its
	// context chooses; a local run takes the host's value when it is set
	// (`XAI_RESERVE=30s make run`), else the function's default.
	Setting Origin = "setting"
	// HostOnly: never set by the stack (an API key lives in the secret);
	// locally it is read from the host's environment.
	HostOnly Origin = "host"
)

// Var is one environment variable of the functions: the one definition the
// stack sets (infra), the functions read (package config), the local stack
// passes through (internal/devstack) and .env.example documents.
type Var struct {
	Name string
	Kind Kind
	// Default is the value a function applies when the variable is unset,
	// in the variable's own syntax; "" when there is none.
	Default string
	// Min and Max bound an int or a duration, in its syntax.
	Min, Max string
	// Values are the values of an enum.
	Values []string
	// Required: a function fails at start-up, naming it, when it is unset.
	Required bool
	Origin   Origin
	// Doc is what it means, in one line.
	Doc string
}

// The variables of the functions.
var (
	VarStage = Var{Name: EnvStage, Kind: KindString, Required: true, Origin: FromStack,
		Doc: "deployment stage; table names end in it: dev, prod, or local"}
	VarLogLevel = Var{Name: EnvLogLevel, Kind: KindEnum, Default: DefaultLogLevel, Values: []string{"debug", "info", "warn", "error"}, Origin: Setting,
		Doc: "level of the JSON logs"}

	VarUserPortfoliosTable = Var{Name: EnvUserPortfoliosTable, Kind: KindString, Required: true, Origin: FromStack,
		Doc: "shared table of portfolios owned by portfolio-api, scanned read-only"}
	VarPortfolioPositionsTable = Var{Name: EnvPortfolioPositionsTable, Kind: KindString, Required: true, Origin: FromStack,
		Doc: "shared table of positions owned by portfolio-api, scanned read-only"}
	VarTickerDataTable = Var{Name: EnvTickerDataTable, Kind: KindString, Required: true, Origin: FromStack,
		Doc: "table of one row per ticker and trading day"}
	VarDailyBarsTable = Var{Name: EnvDailyBarsTable, Kind: KindString, Required: true, Origin: FromStack,
		Doc: "table of the stored daily history"}
	VarPortfolioAnalysesTable = Var{Name: EnvPortfolioAnalysesTable, Kind: KindString, Required: true, Origin: FromStack,
		Doc: "table of the analyses"}
	VarAnalysisReservationsTable = Var{Name: EnvAnalysisReservationsTable, Kind: KindString, Required: true, Origin: FromStack,
		Doc: "the analysis ledger: claims written before the model is paid, the answers paid, the tickers' scores"}

	VarTickerQueueURL = Var{Name: EnvTickerQueueURL, Kind: KindURL, Origin: FromStack,
		Doc: "the ticker queue (FIFO when the URL ends in .fifo)"}
	VarTickerDLQURL = Var{Name: EnvTickerDLQURL, Kind: KindURL, Origin: FromStack,
		Doc: "the ticker queue's dead-letter queue, where processTicker sends a record after its last attempt"}
	VarTickerMessageGroups = Var{Name: EnvTickerMessageGroups, Kind: KindInt, Default: strconv.Itoa(DefaultTickerMessageGroups), Min: "1", Max: "100", Origin: Setting,
		Doc: "FIFO message groups: consumers in parallel"}
	VarTickerRecordBudget = Var{Name: EnvTickerRecordBudget, Kind: KindDuration, Min: "1s", Max: "15m", Origin: Setting,
		Doc: "least time left before the deadline to start another record (default one pacing interval + 15s)"}

	VarPolygonBaseURL = Var{Name: EnvPolygonBaseURL, Kind: KindURL, Default: DefaultPolygonBaseURL, Origin: Setting,
		Doc: "scheme and host of the Polygon.io (Massive) API"}
	VarPolygonCallsPerMinute = Var{Name: EnvPolygonCallsPerMinute, Kind: KindInt, Default: strconv.Itoa(DefaultPolygonCallsPerMinute), Min: "0", Max: "6000", Origin: Setting,
		Doc: "market-data calls per minute, retries and pages included (0: unlimited)"}

	VarDefaultPortfolio = Var{Name: EnvDefaultPortfolio, Kind: KindString, Default: DefaultPortfolio, Origin: Setting,
		Doc: "portfolio analyzed when the event names none (not \"*\")"}
	VarAnalysisQueueURL = Var{Name: EnvAnalysisQueueURL, Kind: KindURL, Required: true, Origin: FromStack,
		Doc: "the analysis queue the fan-out sends one message per portfolio to"}
	VarAnalysisManager = Var{Name: EnvAnalysisManager, Kind: KindEnum, Default: DefaultAnalysisManager, Values: []string{ManagerModel, ManagerRules}, Origin: Setting,
		Doc: "who writes a portfolio's overview over the ticker scores: the model (one call a portfolio) or the deterministic rules (no call) (CDK context analysisManager)"}
	VarModelProvider = Var{Name: EnvModelProvider, Kind: KindEnum, Default: DefaultModelProvider, Values: modelProviderNames(), Origin: Setting,
		Doc: "the analysis model's provider (CDK context modelProvider)"}
	VarXAIAPIURL = Var{Name: EnvXAIAPIURL, Kind: KindURL, Default: DefaultXAIAPIURL, Origin: Setting,
		Doc: "xAI's full chat-completions URL"}
	VarXAIModel = Var{Name: EnvXAIModel, Kind: KindString, Default: DefaultXAIModel, Origin: Setting,
		Doc: "requested xAI model; the model the API reports is stored"}
	VarXAIMaxCompletionTokens = Var{Name: EnvXAIMaxCompletionTokens, Kind: KindInt, Default: strconv.Itoa(DefaultXAIMaxCompletionTokens), Min: "256", Max: "1000000", Origin: Setting,
		Doc: "ceiling of each call's completion cap (the visible answer; not the reasoning)"}
	VarXAIReasoningEffort = Var{Name: EnvXAIReasoningEffort, Kind: KindEnum, Default: DefaultXAIReasoningEffort, Values: []string{"low", "medium", "high", "none", ReasoningEffortOmit}, Origin: Setting,
		Doc: "reasoning_effort sent to models that take it; omit sends none"}
	VarXAIAttemptTimeout = Var{Name: EnvXAIAttemptTimeout, Kind: KindDuration, Default: DefaultXAIAttemptTimeout.String(), Min: "1s", Max: "15m", Origin: Setting,
		Doc: "bound of one HTTP attempt, so a stalled connection is retried within the deadline"}
	VarXAIReserve = Var{Name: EnvXAIReserve, Kind: KindDuration, Default: DefaultXAIReserve.String(), Min: "0s", Max: "5m", Origin: Setting,
		Doc: "time kept free before the deadline for the fallback analyst and the store"}

	VarAPIKeysSecretARN = Var{Name: EnvAPIKeysSecretARN, Kind: KindString, Origin: FromStack,
		Doc: "ARN of the stage's secret of API keys"}
	VarPolygonAPIKey = Var{Name: EnvPolygonAPIKey, Kind: KindString, Origin: HostOnly,
		Doc: "the Polygon key, locally (it takes precedence over the secret)"}
	VarXAIAPIKey = Var{Name: EnvXAIAPIKey, Kind: KindString, Origin: HostOnly,
		Doc: "the xAI key, locally (it takes precedence over the secret)"}
)

// ReasoningEffortOmit is the XAI_REASONING_EFFORT value that sends no
// reasoning_effort at all (for models that reject it).
const ReasoningEffortOmit = "omit"

// Vars lists every variable of the contract.
func Vars() []Var {
	var all []Var
	seen := map[string]bool{}
	for _, f := range Functions {
		for _, v := range f.Vars() {
			if !seen[v.Name] {
				seen[v.Name] = true
				all = append(all, v)
			}
		}
	}
	return all
}

// VarByName finds a variable of the contract.
func VarByName(name string) (Var, bool) {
	i := slices.IndexFunc(Vars(), func(v Var) bool { return v.Name == name })
	if i < 0 {
		return Var{}, false
	}
	return Vars()[i], true
}

// Reads reports whether the function reads the variable.
func (f Function) Reads(name string) bool {
	return slices.ContainsFunc(f.Vars(), func(v Var) bool { return v.Name == name })
}
