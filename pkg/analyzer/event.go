// Package analyzer is the analyzePortfolio use case. One function serves
// two triggers:
//
//   - the schedule or a manual run (Handle): {"portfolio_name":"NAME"}
//     analyzes that portfolio in this invocation; "*" or
//     {"portfolio_names":[…]} fans out instead, one message per portfolio on
//     the analysis queue, oldest analysis first;
//   - the analysis queue (HandleQueue): one portfolio per message, each in
//     its own invocation and deadline; one that could not be analyzed is
//     handed back (retried, then dead-lettered), never skipped silently.
//
// Analyzing a portfolio gathers its positions and the latest market data,
// reserves the analysis key with a conditional write so that overlapping
// runs and redelivered messages pay once, asks the language model for a
// structured analysis (in batches for large portfolios) — or the rules
// analyst when no model is configured or its answer cannot be used —
// validates it, applies the data-quality rules and stores it, reusing a
// stored analysis of the same data instead of paying twice.
package analyzer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zsmseven/backend/pkg/deploy"
)

// AllPortfolios as the portfolio name analyzes every portfolio found.
const AllPortfolios = deploy.AllPortfolios

// Event is the input of a scheduled or manual invocation:
//
//	{"portfolio_name": "ZSM Seven", "force": false}   one portfolio, in this invocation
//	{"portfolio_name": "*"}                           fan out: every portfolio
//	{"portfolio_names": ["A", "B"], "force": true}    fan out: these portfolios
//
// An empty name means the configured default. Unknown fields (the Scheduler
// may add some) are ignored. An SQS event (Records) is routed to the queue
// consumer instead (Service.Invoke).
type Event struct {
	PortfolioName string `json:"portfolio_name"`
	// PortfolioNames fans out to exactly these portfolios.
	PortfolioNames []string `json:"portfolio_names,omitempty"`
	// Force re-analyzes even when an analysis of the same data is stored.
	Force bool `json:"force"`
}

const eventShape = `{"portfolio_name": string, "portfolio_names": [string], "force": bool}`

// UnmarshalJSON decodes an event, turning malformed input into one clear
// error line instead of the runtime's generic one.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var p plain
	if len(bytes.TrimSpace(b)) == 0 {
		*e = Event{}
		return nil
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("analyzePortfolio event is not %s: %w", eventShape, err)
	}
	*e = Event(p)
	return e.check()
}

func (e Event) check() error {
	if e.PortfolioName != "" && len(e.PortfolioNames) > 0 {
		return errors.New(`analyzePortfolio event: give "portfolio_name" or "portfolio_names", not both`)
	}
	if e.PortfolioNames != nil && len(e.PortfolioNames) == 0 {
		return errors.New(`analyzePortfolio event: "portfolio_names" is empty`)
	}
	return nil
}

// DecodeEvent decodes a raw event (as the Lambda runtime does), with the same one-line
// errors for malformed input.
func DecodeEvent(b []byte) (Event, error) {
	var e Event
	if len(bytes.TrimSpace(b)) == 0 {
		return e, nil
	}
	if !json.Valid(b) {
		return e, fmt.Errorf("analyzePortfolio event is not %s: malformed JSON (%d bytes)", eventShape, len(b))
	}
	err := json.Unmarshal(b, &e)
	return e, err
}

// isQueueEvent reports whether a raw event is an SQS event: an object with
// "Records". Its records' source is checked by HandleQueue's caller.
func isQueueEvent(b []byte) bool {
	var probe struct {
		Records json.RawMessage `json:"Records"`
	}
	return json.Unmarshal(b, &probe) == nil && len(probe.Records) > 0 && probe.Records[0] == '['
}

// Outcome statuses of one portfolio.
const (
	OutcomeOK       = "ok"       // analyzed by the model and stored
	OutcomeFallback = "fallback" // analyzed (wholly or partly) by the rules analyst and stored
	OutcomeReused   = "reused"   // an analysis of the same data was already stored (or being stored by another run)
	OutcomeQueued   = "queued"   // fan-out: a message was queued for it
	OutcomeFailed   = "failed"   // nothing stored; Error says why (a queued one is retried)
	OutcomeSkipped  = "skipped"  // nothing to analyze (no valid positions, unknown, invalid name); Reason says why, and it is counted
)

// Outcome reports one portfolio of an invocation.
type Outcome struct {
	Portfolio string `json:"portfolio"`
	Status    string `json:"status"`
	// Timestamp is the stored item's sort key (RFC 3339), also for a reused one.
	Timestamp string `json:"timestamp,omitempty"`
	Model     string `json:"model,omitempty"`
	DataAsOf  string `json:"dataAsOf,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Error     string `json:"error,omitempty"`
	// Calls is the number of model calls made (paid).
	Calls int `json:"calls,omitempty"`
}

// Result reports an invocation.
type Result struct {
	Portfolios []Outcome `json:"portfolios"`
	// Done lists the portfolios with a stored analysis (ok, fallback or reused).
	Done []string `json:"done"`
	// Queued lists the portfolios a fan-out queued, in queue order.
	Queued  []string `json:"queued"`
	Skipped []string `json:"skipped"`
	Failed  []string `json:"failed"`
	// RunID names a fan-out (its messages carry it).
	RunID string `json:"runId,omitempty"`
}

func newResult() Result {
	// Lists, never null, in the JSON answer.
	return Result{Portfolios: []Outcome{}, Done: []string{}, Queued: []string{}, Skipped: []string{}, Failed: []string{}}
}

func (r *Result) add(o Outcome) {
	r.Portfolios = append(r.Portfolios, o)
	switch o.Status {
	case OutcomeFailed:
		r.Failed = append(r.Failed, o.Portfolio)
	case OutcomeSkipped:
		r.Skipped = append(r.Skipped, o.Portfolio)
	case OutcomeQueued:
		r.Queued = append(r.Queued, o.Portfolio)
	default:
		r.Done = append(r.Done, o.Portfolio)
	}
}
