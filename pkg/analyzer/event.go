// Package analyzer is the analyzePortfolio use case: for a portfolio (or
// every portfolio), gather its positions and the latest market data, ask the
// language model for a structured analysis — or the rules analyst when no
// model is configured or its answer cannot be used — validate it, and store
// it, reusing a stored analysis of the same data instead of paying twice.
package analyzer

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// AllPortfolios as the portfolio name analyzes every portfolio found.
const AllPortfolios = "*"

// Event is the invocation input: {"portfolio_name": "ZSM Seven", "force": false}.
// An empty name means the configured default. Unknown fields (the Scheduler
// may add some) are ignored.
type Event struct {
	PortfolioName string `json:"portfolio_name"`
	// Force re-analyzes even when an analysis of the same data is stored.
	Force bool `json:"force"`
}

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
		return fmt.Errorf("analyzePortfolio event is not {\"portfolio_name\": string, \"force\": bool}: %w", err)
	}
	*e = Event(p)
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
		return e, fmt.Errorf("analyzePortfolio event is not {\"portfolio_name\": string, \"force\": bool}: malformed JSON (%d bytes)", len(b))
	}
	err := json.Unmarshal(b, &e)
	return e, err
}

// Outcome statuses of one portfolio.
const (
	OutcomeOK       = "ok"       // analyzed by the model and stored
	OutcomeFallback = "fallback" // analyzed by the rules analyst and stored
	OutcomeReused   = "reused"   // an analysis of the same data was already stored
	OutcomeFailed   = "failed"   // nothing stored; Error says why
	OutcomeSkipped  = "skipped"  // not attempted (time budget, no positions); Reason says why
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
}

// Result reports an invocation.
type Result struct {
	Portfolios []Outcome `json:"portfolios"`
	// Done lists the portfolios with a stored analysis (ok, fallback or reused).
	Done    []string `json:"done"`
	Skipped []string `json:"skipped"`
	Failed  []string `json:"failed"`
}

func (r *Result) add(o Outcome) {
	r.Portfolios = append(r.Portfolios, o)
	switch o.Status {
	case OutcomeFailed:
		r.Failed = append(r.Failed, o.Portfolio)
	case OutcomeSkipped:
		r.Skipped = append(r.Skipped, o.Portfolio)
	default:
		r.Done = append(r.Done, o.Portfolio)
	}
}
