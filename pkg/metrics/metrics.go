// Package metrics emits custom CloudWatch metrics in Embedded Metric Format
// (EMF): one JSON log line per flush, which CloudWatch turns into metrics with
// no API call and no added latency. The metric names are declared here once;
// the stack's alarms and dashboard use the same constants.
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// Namespace of every custom metric of the service.
const Namespace = "ZSMSeven/Backend"

// DimensionStage is the one dimension of every metric: the deployment stage.
const DimensionStage = "Stage"

// Metric names. Counts unless the name says otherwise.
const (
	TickersQueued       = "TickersQueued"       // processTickers: messages accepted by SQS
	InvalidSymbols      = "InvalidSymbols"      // processTickers: symbols rejected by the validator
	TickersProcessed    = "TickersProcessed"    // processTicker: ticker-data rows written
	PermanentFailures   = "PermanentFailures"   // processTicker: records acknowledged without data (poison, permanent API errors)
	TransientFailures   = "TransientFailures"   // processTicker: records not finished for a transient reason (handed back, re-queued or dead-lettered)
	TickersRequeued     = "TickersRequeued"     // processTicker: records re-sent to the tail of the FIFO queue with attempt+1
	TickersDeadLettered = "TickersDeadLettered" // processTicker: records sent to the DLQ by processTicker after their last attempt
	PolygonCalls        = "PolygonCalls"        // HTTP requests made to Polygon
	PolygonThrottled    = "PolygonThrottled"    // Polygon 429 answers
	PolygonKeyRefused   = "PolygonKeyRefused"   // processTicker: runs stopped because Polygon refused the key (400/401) or the plan (403)
	AnalysesStored      = "AnalysesStored"      // analyzePortfolio: analysis items written
	AnalysesAnalyzed    = "AnalysesAnalyzed"    // analyzePortfolio: portfolios with a current analysis after their run (stored by the model or the rules analyst, or reused)
	AnalysisFallback    = "AnalysisFallback"    // analyzePortfolio: analyses produced (wholly or partly) by the rules analyst
	AnalysisFailed      = "AnalysisFailed"      // analyzePortfolio: portfolio runs that ended without an analysis (handed back to the queue, or failed), and poison messages
	AnalysisSkipped     = "AnalysisSkipped"     // analyzePortfolio: portfolios with nothing to analyze (no valid position, unknown, invalid name)
	AnalysesQueued      = "AnalysesQueued"      // analyzePortfolio fan-out: messages accepted by the analysis queue
	LLMCalls            = "LLMCalls"            // xAI calls answered (batches and repairs included)
	LLMPromptTokens     = "LLMPromptTokens"     // xAI usage.prompt_tokens
	LLMCachedTokens     = "LLMCachedTokens"     // xAI usage.prompt_tokens_details.cached_tokens
	LLMCompletionTokens = "LLMCompletionTokens" // xAI usage.completion_tokens
	LLMReasoningTokens  = "LLMReasoningTokens"  // xAI usage.completion_tokens_details.reasoning_tokens (billed as output)
	LLMCostUSD          = "LLMCostUSD"          // xAI usage.cost_in_usd_ticks / 1e10 (unit None)
)

// Metric names of the nightly market-data refresh (stored daily history, one
// grouped-daily call a night; docs/decisions/0002-stored-daily-history.md).
const (
	GroupedNotAuthorized = "GroupedNotAuthorized" // processTicker: nights in per-ticker fallback because grouped daily answered 403 NOT_AUTHORIZED
	GroupedNotPublished  = "GroupedNotPublished"  // processTicker: grouped-daily answers without the requested day (resultsCount 0: not published yet)
	GroupedRowsSkipped   = "GroupedRowsSkipped"   // processTicker: grouped-daily rows skipped (symbol rejected, bad price, duplicate ticker, other date)
	TickersNotInGrouped  = "TickersNotInGrouped"  // processTicker: held tickers absent from a published grouped-daily answer (halted, delisted, unknown)
	SplitsFound          = "SplitsFound"          // processTicker: splits found since the last refresh for tickers with stored history
	TickersBackfilled    = "TickersBackfilled"    // processTicker: per-ticker aggregates calls that replaced a ticker's stored history (new, split, short, gap, fallback)
	TickersStale         = "TickersStale"         // processTicker: tickers left without a row of the trading day (no bar of that day yet); the last good row is kept
	TickersCurrent       = "TickersCurrent"       // processTicker: records acknowledged without a call because the row of their trading day was already stored
	RecordsReleased      = "RecordsReleased"      // processTicker: handed-back records made visible again at once (ChangeMessageVisibility 0)
)

// Recorder accumulates metric values during one invocation and writes them as
// one EMF document. It is safe for concurrent use. The zero value is not
// usable; call New.
type Recorder struct {
	mu     sync.Mutex
	w      io.Writer
	stage  string
	values map[string]float64
	units  map[string]string
	now    func() time.Time
}

// New returns a Recorder writing EMF documents to w with the given stage.
func New(w io.Writer, stage string) *Recorder {
	return &Recorder{w: w, stage: stage, values: map[string]float64{}, units: map[string]string{}, now: time.Now}
}

// Add adds n to a count metric.
func (r *Recorder) Add(name string, n float64) { r.add(name, n, "Count") }

// AddValue adds v to a metric with the given CloudWatch unit
// ("Milliseconds", "None", ...).
func (r *Recorder) AddValue(name string, v float64, unit string) { r.add(name, v, unit) }

func (r *Recorder) add(name string, v float64, unit string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values[name] += v
	r.units[name] = unit
}

// Snapshot returns the values accumulated since the last Flush.
func (r *Recorder) Snapshot() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.values)
}

// Flush writes the accumulated values as one EMF line and resets them.
// Nothing is written when nothing was recorded.
func (r *Recorder) Flush() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.values) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(r.values))
	defs := make([]map[string]string, 0, len(names))
	doc := map[string]any{DimensionStage: r.stage}
	for _, n := range names {
		defs = append(defs, map[string]string{"Name": n, "Unit": r.units[n]})
		doc[n] = r.values[n]
	}
	doc["_aws"] = map[string]any{
		"Timestamp": r.now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  Namespace,
			"Dimensions": [][]string{{DimensionStage}},
			"Metrics":    defs,
		}},
	}
	line, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode EMF document: %w", err)
	}
	clear(r.values)
	clear(r.units)
	if _, err := r.w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write EMF document: %w", err)
	}
	return nil
}
