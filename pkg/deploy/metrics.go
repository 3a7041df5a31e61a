package deploy

import "time"

// Custom metrics of the service: CloudWatch Embedded Metric Format lines
// written by package metrics, in one namespace, with one dimension. The
// stack's alarms (Alarms) and dashboard (DashboardGraphs) watch them by these
// definitions, so an alarm cannot watch a name nothing emits: a test walks
// the production code for every metric's emitter, and refuses an emitter in a
// provider's adapter (a second provider would leave the alarm quiet).
const (
	// MetricNamespace holds every custom metric of the service.
	MetricNamespace = "ZSMSeven/Backend"
	// MetricDimension is the one dimension of every metric: the stage.
	MetricDimension = "Stage"
)

// Unit is a CloudWatch metric unit.
type Unit string

// The units the service's metrics use.
const (
	UnitCount Unit = "Count"
	UnitNone  Unit = "None"
)

// Metric is one custom metric: its name, unit and meaning.
type Metric struct {
	Name string
	Unit Unit
	// Doc says who emits it and what one unit means.
	Doc string
}

// Metrics of processTickers.
var (
	TickersQueued  = Metric{"TickersQueued", UnitCount, "processTickers: messages accepted by SQS"}
	InvalidSymbols = Metric{"InvalidSymbols", UnitCount, "processTickers: symbols rejected by the validator"}
)

// Metrics of processTicker's records.
var (
	TickersProcessed    = Metric{"TickersProcessed", UnitCount, "processTicker: ticker-data rows written"}
	PermanentFailures   = Metric{"PermanentFailures", UnitCount, "processTicker: records acknowledged without data (poison, permanent API errors)"}
	TransientFailures   = Metric{"TransientFailures", UnitCount, "processTicker: records not finished for a transient reason (handed back, re-queued or dead-lettered)"}
	TickersRequeued     = Metric{"TickersRequeued", UnitCount, "processTicker: records re-sent to the tail of the FIFO queue with attempt+1"}
	TickersDeadLettered = Metric{"TickersDeadLettered", UnitCount, "processTicker: records sent to the DLQ by processTicker after their last attempt"}
	RecordsReleased     = Metric{"RecordsReleased", UnitCount, "processTicker: handed-back records made visible again at once (ChangeMessageVisibility 0)"}
)

// Metrics of the market-data provider, whichever it is. Calls and throttled
// answers are counted by the HTTP decorator every market-data adapter is
// built with (metrics.Recorder.Transport), a refused key by the use case.
var (
	MarketDataCalls      = Metric{"MarketDataCalls", UnitCount, "processTicker: HTTP requests made to the market-data provider (retries and pages included)"}
	MarketDataThrottled  = Metric{"MarketDataThrottled", UnitCount, "processTicker: market-data answers HTTP 429 (rate limited)"}
	MarketDataKeyRefused = Metric{"MarketDataKeyRefused", UnitCount, "processTicker: runs stopped because the market-data provider refused the key (400/401) or the plan (403)"}
	GroupedNotAuthorized = Metric{"GroupedNotAuthorized", UnitCount, "processTicker: nights in per-ticker fallback because the grouped daily answer was refused by the plan"}
	GroupedNotPublished  = Metric{"GroupedNotPublished", UnitCount, "processTicker: grouped-daily answers without the requested day (not published yet)"}
	GroupedRowsSkipped   = Metric{"GroupedRowsSkipped", UnitCount, "processTicker: grouped-daily rows skipped (symbol rejected, bad price, duplicate ticker, other date)"}
	TickersNotInGrouped  = Metric{"TickersNotInGrouped", UnitCount, "processTicker: held tickers absent from a published grouped-daily answer (halted, delisted, unknown)"}
	SplitsFound          = Metric{"SplitsFound", UnitCount, "processTicker: splits added to the ledger or corrected there (listed late, a ratio or a date changed) by the night's check of a trailing window"}
	TickersBackfilled    = Metric{"TickersBackfilled", UnitCount, "processTicker: per-ticker calls for a held ticker the grouped answers lack, or whose day's grouped answer was never asked (bounded per night together), or every ticker on a night whose plan has no grouped answer"}
	SessionsFilled       = Metric{"SessionsFilled", UnitCount, "processTicker: past sessions of the whole market fetched and stored to complete the window of the indicators (one grouped call each)"}
	SessionsClosed       = Metric{"SessionsClosed", UnitCount, "processTicker: sessions empty on two different nights while a later one was published, recorded as closures of the exchange"}
	PriceDiscontinuities = Metric{"PriceDiscontinuities", UnitCount, "processTicker: rows whose last close-to-close move, adjusted, matches a nearby split's ratio (its date is probably off) or exceeds the bound unexplained (a split not listed yet?)"}
	TickersStale         = Metric{"TickersStale", UnitCount, "processTicker: tickers left without a row of the trading day (no bar of that day yet); the last good row is kept"}
	TickersCurrent       = Metric{"TickersCurrent", UnitCount, "processTicker: records acknowledged without a call because the row of their trading day was already stored"}
)

// Metrics of analyzePortfolio.
var (
	AnalysesStored   = Metric{"AnalysesStored", UnitCount, "analyzePortfolio: analysis items written"}
	AnalysesAnalyzed = Metric{"AnalysesAnalyzed", UnitCount, "analyzePortfolio: portfolios with a current analysis after their run (stored by the model or the rules analyst, or reused)"}
	AnalysisFallback = Metric{"AnalysisFallback", UnitCount, "analyzePortfolio: analyses produced (wholly or partly) by the rules analyst"}
	AnalysisFailed   = Metric{"AnalysisFailed", UnitCount, "analyzePortfolio: jobs that ended without their result — a portfolio run without an analysis, a ticker batch job that failed — handed back to the queue or failed; poison messages; fan-out messages not queued"}
	AnalysisSkipped  = Metric{"AnalysisSkipped", UnitCount, "analyzePortfolio: portfolios with nothing to analyze (no valid position, unknown, invalid name)"}
	AnalysesQueued   = Metric{"AnalysesQueued", UnitCount, "analyzePortfolio fan-out: messages accepted by the analysis queue"}
	// TickerBatchesQueued counts the fan-out's batch messages: the night's
	// tickers without a score, in batches, scored before the portfolios.
	TickerBatchesQueued = Metric{"TickerBatchesQueued", UnitCount, "analyzePortfolio fan-out: batches of tickers to score accepted by the analysis queue"}
	TickerScoresStored  = Metric{"TickerScoresStored", UnitCount, "analyzePortfolio: ticker scores written (by the model, or by the rules when its answers did not validate)"}
	TickerScoresReused  = Metric{"TickerScoresReused", UnitCount, "analyzePortfolio: ticker scores a portfolio read from the ledger instead of paying for them"}
	LLMAnswersReused    = Metric{"LLMAnswersReused", UnitCount, "analyzePortfolio: paid answers read from the ledger instead of paying the same request again (a crash, a deadline or a redelivery resumed)"}
)

// Metrics of the analysis model, whichever provider answers (counted by the
// analyzer from each completion's usage).
var (
	LLMCalls            = Metric{"LLMCalls", UnitCount, "analyzePortfolio: model calls answered (batches and repairs included)"}
	LLMPromptTokens     = Metric{"LLMPromptTokens", UnitCount, "analyzePortfolio: prompt tokens billed"}
	LLMCachedTokens     = Metric{"LLMCachedTokens", UnitCount, "analyzePortfolio: prompt tokens served from the provider's prompt cache"}
	LLMCompletionTokens = Metric{"LLMCompletionTokens", UnitCount, "analyzePortfolio: completion tokens billed (reasoning included)"}
	LLMReasoningTokens  = Metric{"LLMReasoningTokens", UnitCount, "analyzePortfolio: reasoning tokens (billed as completion)"}
	LLMCostUSD          = Metric{"LLMCostUSD", UnitNone, "analyzePortfolio: cost in USD as reported by the provider"}
)

// Metrics lists every custom metric of the service.
var Metrics = []Metric{
	TickersQueued, InvalidSymbols,
	TickersProcessed, PermanentFailures, TransientFailures, TickersRequeued, TickersDeadLettered, RecordsReleased,
	MarketDataCalls, MarketDataThrottled, MarketDataKeyRefused,
	GroupedNotAuthorized, GroupedNotPublished, GroupedRowsSkipped, TickersNotInGrouped, SplitsFound, TickersBackfilled, TickersStale, TickersCurrent,
	SessionsFilled, SessionsClosed, PriceDiscontinuities,
	AnalysesStored, AnalysesAnalyzed, AnalysisFallback, AnalysisFailed, AnalysisSkipped, AnalysesQueued,
	TickerBatchesQueued, TickerScoresStored, TickerScoresReused, LLMAnswersReused,
	LLMCalls, LLMPromptTokens, LLMCachedTokens, LLMCompletionTokens, LLMReasoningTokens, LLMCostUSD,
}

// Comparison is an alarm's comparison of its metric with the threshold.
type Comparison string

// The comparisons the alarms use (CloudFormation's names).
const (
	GreaterThan Comparison = "GreaterThanThreshold"
	LessThan    Comparison = "LessThanThreshold"
)

// Alarm is an alarm on the service's own metrics: the stack creates it,
// named AlarmNamePrefix(stage)+Name, with the alarm topic as its action.
type Alarm struct {
	// ID is the construct id (the template's logical id starts with it).
	ID string
	// Name follows AlarmNamePrefix(stage).
	Name string
	// Description tells the operator what happened and what to do.
	Description string
	// Metrics are summed, each missing period counted as 0, when there are
	// several (a metric-math expression); one is watched as it is.
	Metrics []Metric
	// Label names the sum of several metrics on the graph.
	Label string
	// Statistic of each metric over Period ("Sum").
	Statistic string
	Period    time.Duration
	// Comparison of the statistic with Threshold, breaching for
	// EvaluationPeriods consecutive periods (every one of them).
	Comparison        Comparison
	Threshold         float64
	EvaluationPeriods int
	// MissingBreaches treats a period without data as breaching (the
	// freshness alarms: silence is the fault); otherwise as not breaching.
	MissingBreaches bool
}

// StaleWindow is how long the pipeline may stay silent before the freshness
// alarms fire. Both jobs run five times a week; the longest regular gap
// between runs is the weekend (Friday 21:30 to Monday 21:30 for tickers,
// Saturday 01:00 to Tuesday 01:00 for analyses), 72 hours, plus two hours for
// the run itself. A market holiday opens no gap because what is counted is
// work done, not new data: on a holiday night processTicker finds the last
// trading day's rows stored (TickersCurrent, counted with TickersProcessed)
// and the analysis reuses the stored one (AnalysesAnalyzed counts reused
// analyses). A missed weekday run is reported by this backstop only when the
// window has passed; the errors and dead-letter alarms report most failures
// within minutes.
const StaleWindow = 74 * time.Hour

// OldestMessageAlarmAge is how old the oldest message of a work queue may get.
// A night's ticker run drains the queue in about 12 s per call on the free
// plan; a message still there after 3 hours means the consumer is not
// consuming (event source disabled, function failing before it can report),
// which the freshness alarms would report only after StaleWindow.
const OldestMessageAlarmAge = 3 * time.Hour

// AlarmPeriod is the period of the alarms on counts of events.
const AlarmPeriod = 5 * time.Minute

// The alarms on the service's own metrics. The stack adds the alarms on AWS's
// metrics of its resources (queue age, dead-letter queues that grew, function
// errors), whose thresholds are OldestMessageAlarmAge and "any".
var (
	MarketDataThrottledAlarm = Alarm{
		ID: "MarketDataThrottledAlarm", Name: "market-data-throttled",
		Description: "The market-data provider answered 429: the pacing (" + EnvPolygonCallsPerMinute + ") exceeds the plan or another client shares the key.",
		Metrics:     []Metric{MarketDataThrottled}, Statistic: "Sum", Period: AlarmPeriod,
		Comparison: GreaterThan, Threshold: 0, EvaluationPeriods: 1,
	}
	MarketDataKeyRefusedAlarm = Alarm{
		ID: "MarketDataKeyRefusedAlarm", Name: "market-data-key-refused",
		Description: "processTicker stopped a run because the market-data provider refused the key (400 missing, 401 unknown) or the plan (403); " +
			"the messages stay queued. Put a valid key in the stage's secret or fix the plan (runbook), then let the queue drain.",
		Metrics: []Metric{MarketDataKeyRefused}, Statistic: "Sum", Period: AlarmPeriod,
		Comparison: GreaterThan, Threshold: 0, EvaluationPeriods: 1,
	}
	AnalysisFallbackAlarm = Alarm{
		ID: "AnalysisFallbackAlarm", Name: "analysis-fallback",
		Description: "An analysis was produced by the rules analyst instead of the model (key missing, API failing or output invalid); the stored item says why.",
		Metrics:     []Metric{AnalysisFallback}, Statistic: "Sum", Period: AlarmPeriod,
		Comparison: GreaterThan, Threshold: 0, EvaluationPeriods: 1,
	}
	AnalysisFailedAlarm = Alarm{
		ID: "AnalysisFailedAlarm", Name: "analysis-failed",
		Description: "Portfolio analyses ended without a result (handed back to the analysis queue for a retry, a poison message, or a fan-out message not queued); " +
			"the analyzePortfolio log line \"analysis failed\" names the portfolio and the error.",
		Metrics: []Metric{AnalysisFailed}, Statistic: "Sum", Period: AlarmPeriod,
		Comparison: GreaterThan, Threshold: 0, EvaluationPeriods: 1,
	}
	StaleTickerDataAlarm = Alarm{
		ID: "StaleTickerDataAlarm", Name: "ticker-data-stale",
		Description: "No ticker-data row written or found current for 74 hours (longer than the weekend gap): the nightly ticker pipeline is not running.",
		Metrics:     []Metric{TickersProcessed, TickersCurrent}, Label: "ticker rows written or already current",
		Statistic: "Sum", Period: time.Hour,
		Comparison: LessThan, Threshold: 1, EvaluationPeriods: int(StaleWindow / time.Hour), MissingBreaches: true,
	}
	StaleAnalysisAlarm = Alarm{
		ID: "StaleAnalysisAlarm", Name: "analysis-stale",
		Description: "No portfolio analysed (stored or reused) for 74 hours (longer than the weekend gap): the nightly analysis is not running.",
		Metrics:     []Metric{AnalysesAnalyzed}, Statistic: "Sum", Period: time.Hour,
		Comparison: LessThan, Threshold: 1, EvaluationPeriods: int(StaleWindow / time.Hour), MissingBreaches: true,
	}
)

// Alarms lists the alarms on the service's own metrics, in the order the
// stack creates them.
var Alarms = []Alarm{
	MarketDataThrottledAlarm, MarketDataKeyRefusedAlarm, AnalysisFallbackAlarm, AnalysisFailedAlarm,
	StaleTickerDataAlarm, StaleAnalysisAlarm,
}

// AlarmNamePrefix starts the name of every alarm of a stage; the alarm
// topic's policy lets exactly the alarms with that prefix publish.
func AlarmNamePrefix(stage string) string { return "zsm-" + stage + "-" }

// Graph is one graph of the service's metrics on the stage's dashboard
// (sums over AlarmPeriod); the dashboard adds graphs of AWS's metrics of
// the functions and queues.
type Graph struct {
	Title string
	// Left and Right are the metrics on each axis.
	Left, Right []Metric
}

// The graphs of the dashboard that show the service's own metrics.
var (
	TickersGraph      = Graph{Title: "Tickers", Left: []Metric{TickersQueued, TickersProcessed, PermanentFailures, TransientFailures, TickersRequeued, TickersDeadLettered, InvalidSymbols}}
	MarketDataGraph   = Graph{Title: "Market data calls, 429s and refused keys", Left: []Metric{MarketDataCalls, MarketDataThrottled, MarketDataKeyRefused}}
	LLMGraph          = Graph{Title: "LLM tokens and cost", Left: []Metric{LLMPromptTokens, LLMCachedTokens, LLMCompletionTokens, LLMReasoningTokens}, Right: []Metric{LLMCostUSD}}
	AnalysesGraph     = Graph{Title: "Analyses", Left: []Metric{AnalysesQueued, AnalysesAnalyzed, AnalysesStored, AnalysisFallback, AnalysisFailed, AnalysisSkipped}, Right: []Metric{LLMCalls}}
	TickerScoresGraph = Graph{Title: "Ticker scores and paid answers", Left: []Metric{TickerBatchesQueued, TickerScoresStored, TickerScoresReused}, Right: []Metric{LLMAnswersReused}}
	RefreshGraph      = Graph{Title: "Market data: the night's refresh", Left: []Metric{TickersCurrent, TickersBackfilled, TickersStale, TickersNotInGrouped, SplitsFound}, Right: []Metric{SessionsFilled, SessionsClosed, PriceDiscontinuities}}
	GroupedDailyGraph = Graph{Title: "Market data: grouped daily and the key", Left: []Metric{GroupedNotPublished, GroupedNotAuthorized, GroupedRowsSkipped, MarketDataKeyRefused, RecordsReleased}}
)

// DashboardGraphs lists the graphs of the service's own metrics.
var DashboardGraphs = []Graph{TickersGraph, MarketDataGraph, LLMGraph, AnalysesGraph, TickerScoresGraph, RefreshGraph, GroupedDailyGraph}
