// Package analysis is the pure core of the portfolio analysis, in two
// levels. The ticker analyst scores each held ticker from its own data
// (ticker.go: the data block written from indicators.Fields, the prompt,
// the schema, the entry-by-entry parser); the portfolio manager judges a
// portfolio from its positions' weights, P&L and those verdicts
// (manager.go), or the deterministic rules do (rules.go). Compose puts the
// stored result together; Finalize applies the data-quality rules; the
// ledger's types (ledger.go) and the stored record (record.go) are the
// repositories' ports in the domain's words. It imports no AWS or HTTP code.
package analysis

import (
	"fmt"
	"math"

	"github.com/zsmseven/backend/pkg/symbol"
)

// PromptVersion names the prompts. Change it whenever a system message, a
// user message template or a schema changes: ticker scores and stored
// analyses record it, and are reused only for the same version (a new
// indicator changes the ticker analyst's template hash on its own).
const PromptVersion = "2026-12-07.1"

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Chat roles.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// TemplateSHA256 identifies every instruction of this PromptVersion: the
// ticker analyst's and the portfolio manager's (their system messages, user
// templates and schema shapes). Stored analyses record it.
func TemplateSHA256() string { return KeyOf(TickerTemplateSHA256(), ManagerTemplateSHA256()) }

func checkSymbols(symbols []string) error {
	for i, s := range symbols {
		if !symbol.Valid(s) {
			return fmt.Errorf("symbol %q is not a normalized symbol", s)
		}
		if i > 0 && symbols[i-1] >= s {
			return fmt.Errorf("symbols must be unique and sorted: %q after %q", s, symbols[i-1])
		}
	}
	return nil
}

// round returns v rounded to d decimals, or nil; non-finite values become nil
// (JSON cannot carry them).
func round(v *float64, d int) *float64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return nil
	}
	p := math.Pow(10, float64(d))
	r := math.Round(*v*p) / p
	return &r
}
