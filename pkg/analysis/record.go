package analysis

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// Status of a stored analysis.
const (
	// StatusOK: every ticker scored by the model and the overview written
	// by the configured portfolio manager (the model, or the rules by
	// configuration).
	StatusOK = "ok"
	// StatusFallback: some part came from the rules analyst because the
	// model could not give it (no key, the API failing, an answer that did
	// not validate); Reason says which part and why.
	StatusFallback = "fallback"
)

// Record is one stored analysis of a portfolio (an item of
// portfolio-analyses): the validated result and the audit of how it was
// produced. docs/analysis.md says what each field comes from.
type Record struct {
	Portfolio string
	// Timestamp is the run's instant (the item's sort key).
	Timestamp time.Time
	// Analysis is the human-readable text: the summary, then one line per
	// ticker (Compose).
	Analysis string
	// Model is the model the API reported for the ticker scores (or the
	// overview, when no ticker was scored by it), or RulesName.
	Model string
	// Manager is who wrote the overview (summary, overall risk,
	// concentration flags, top actions): the model the API reported, or
	// RulesName.
	Manager string
	// DataAsOf is the trading date of the newest market data used.
	DataAsOf string
	// Result is the validated structured result (parsed_data).
	Result Result
	// Missing and Stale are symbols without data or with old data.
	Missing, Stale []string
	// Excluded are raw symbols rejected by validation, with the reason.
	Excluded []string
	// Omitted counts the positions beyond MaxPositions left out.
	Omitted int

	PromptVersion     string
	PromptSHA256      string
	InputHash         string
	RequestedModel    string
	SystemFingerprint string
	// Usage is what the portfolio's own model calls (the manager's) cost;
	// the ticker scores' calls are accounted on the ledger's batches and in
	// the metrics.
	Usage     Usage
	LatencyMs int64
	// Attempts is the number of HTTP requests of the manager's calls.
	Attempts int
	// Calls is the number of the manager's model calls answered (paid).
	Calls  int
	Status string
	Reason string
}

// ErrUnreadable is wrapped by a repository's error when some stored
// analyses could not be decoded; the readable ones are returned with it.
var ErrUnreadable = errors.New("stored analysis not readable")

// KeyOf is a key made of parts: the hex SHA-256 of the parts, each followed
// by a NUL, so that no two part lists collide.
func KeyOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sha is the hex SHA-256 of b.
func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
