// Package analysisqueue is the analysis queue's message schema, between
// analyzePortfolio's fan-out and analyzePortfolio's queue consumer (the same
// function): versioned JSON, one message per portfolio, and one per batch of
// tickers to score. It imports no AWS code (the SQS sender is the wiring's,
// pkg/app/analyzeportfolio), so that the use case can speak it.
package analysisqueue

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/strictjson"
)

// Version is the schema version this code writes; Version1 (portfolio
// messages without a kind) is still read.
const (
	Version  = 2
	Version1 = 1
)

// Kinds of message.
const (
	// KindPortfolio asks for one portfolio's analysis.
	KindPortfolio = "portfolio"
	// KindTickers asks for one batch of tickers to be scored (the batch's
	// claim in the ledger names them).
	KindTickers = "tickers"
)

// MaxMessageBytes bounds a body accepted by Decode: a message is at most a
// few hundred bytes.
const MaxMessageBytes = 4096

// maxRunIDLen bounds the run id (a Lambda request id or 32 hex digits).
const maxRunIDLen = 128

// ErrPoison is wrapped by every Decode error: the message can never be
// processed, so the consumer logs, counts and acknowledges it.
var ErrPoison = errors.New("poison message")

// Message is one job of the analysis queue. JSON:
//
//	{"v":2,"kind":"portfolio","portfolio":"ZSM Seven","runId":"…","enqueuedAt":"2026-11-28T06:00:00Z"}
//	{"v":2,"kind":"tickers","batch":"<64 hex digits>","runId":"…","enqueuedAt":"2026-11-28T06:00:00Z"}
//
// plus "force":true on a forced portfolio (omitted when false).
type Message struct {
	V    int    `json:"v"`
	Kind string `json:"kind"`
	// Portfolio is the name exactly as the shared table spells it.
	Portfolio string `json:"portfolio,omitempty"`
	// Batch is the key of a batch claim (KindTickers).
	Batch string `json:"batch,omitempty"`
	// Force analyzes again even when an analysis of the same data is
	// stored, and scores its tickers again.
	Force bool `json:"force,omitempty"`
	// RunID identifies the fan-out that sent the message (a forced
	// analysis and its scores are keyed by it, so a redelivery pays once).
	RunID      string    `json:"runId"`
	EnqueuedAt time.Time `json:"enqueuedAt"`
}

// New returns a portfolio message.
func New(portfolio, runID string, force bool, enqueuedAt time.Time) Message {
	return Message{V: Version, Kind: KindPortfolio, Portfolio: portfolio, Force: force, RunID: runID, EnqueuedAt: enqueuedAt.UTC()}
}

// NewBatch returns a batch message.
func NewBatch(batch, runID string, enqueuedAt time.Time) Message {
	return Message{V: Version, Kind: KindTickers, Batch: batch, RunID: runID, EnqueuedAt: enqueuedAt.UTC()}
}

// Label names the message's job in logs: the portfolio, or the batch.
func (m Message) Label() string {
	if m.Kind == KindTickers {
		return "ticker batch " + m.Batch[:min(12, len(m.Batch))]
	}
	return m.Portfolio
}

// Encode returns the JSON body of m.
func (m Message) Encode() (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode analysis message for %s: %w", m.Label(), err)
	}
	return string(b), nil
}

// Decode parses and validates a body. Anything that is not exactly a v2
// message of a known kind, or a v1 portfolio message — unknown fields,
// trailing data, a portfolio name the analysis would refuse or "*" (a
// message asks for one portfolio; the consumer never fans out), a batch
// key that is not 64 hex digits, a missing run id or time — is an error
// wrapping ErrPoison.
func Decode(data []byte) (Message, error) {
	if len(data) > MaxMessageBytes {
		return Message{}, fmt.Errorf("%w: %d bytes, more than %d", ErrPoison, len(data), MaxMessageBytes)
	}
	var raw struct {
		V          *int    `json:"v"`
		Kind       *string `json:"kind"`
		Portfolio  *string `json:"portfolio"`
		Batch      *string `json:"batch"`
		Force      *bool   `json:"force"`
		RunID      *string `json:"runId"`
		EnqueuedAt *string `json:"enqueuedAt"`
	}
	if err := strictjson.Decode(data, &raw); errors.Is(err, strictjson.ErrTrailingData) {
		return Message{}, fmt.Errorf("%w: data after the message object", ErrPoison)
	} else if err != nil {
		return Message{}, fmt.Errorf("%w: not an analysis message object: %s", ErrPoison, err)
	}
	poison := func(format string, args ...any) (Message, error) {
		return Message{}, fmt.Errorf("%w: %s", ErrPoison, fmt.Sprintf(format, args...))
	}
	kind := KindPortfolio
	switch {
	case raw.V == nil:
		return poison(`no schema version "v"`)
	case *raw.V == Version1:
		if raw.Kind != nil || raw.Batch != nil {
			return poison(`a version 1 message has no "kind" or "batch"`)
		}
	case *raw.V == Version:
		if raw.Kind == nil {
			return poison(`no "kind"`)
		}
		kind = *raw.Kind
	default:
		return poison("schema version %d, want %d or %d", *raw.V, Version, Version1)
	}
	switch {
	case raw.RunID == nil || *raw.RunID == "":
		return poison(`no "runId"`)
	case len(*raw.RunID) > maxRunIDLen:
		return poison(`"runId" longer than %d bytes`, maxRunIDLen)
	case raw.EnqueuedAt == nil:
		return poison(`no "enqueuedAt"`)
	}
	at, err := time.Parse(time.RFC3339Nano, *raw.EnqueuedAt)
	if err != nil {
		return poison(`"enqueuedAt" %.40q is not an RFC 3339 time`, *raw.EnqueuedAt)
	}
	m := Message{V: Version, Kind: kind, RunID: *raw.RunID, EnqueuedAt: at.UTC()}
	switch kind {
	case KindPortfolio:
		switch {
		case raw.Batch != nil:
			return poison(`a portfolio message has no "batch"`)
		case raw.Portfolio == nil:
			return poison(`no "portfolio"`)
		case *raw.Portfolio == "*":
			return poison(`"portfolio" is "*": a message names one portfolio`)
		}
		if _, err := analysis.ValidatePortfolioName(*raw.Portfolio); err != nil {
			return poison("%v", err)
		}
		m.Portfolio = *raw.Portfolio
		if raw.Force != nil {
			m.Force = *raw.Force
		}
	case KindTickers:
		switch {
		case raw.Portfolio != nil || raw.Force != nil:
			return poison(`a batch message has no "portfolio" or "force"`)
		case raw.Batch == nil:
			return poison(`no "batch"`)
		case !isKey(*raw.Batch):
			return poison(`"batch" %.70q is not 64 lowercase hex digits`, *raw.Batch)
		}
		m.Batch = *raw.Batch
	default:
		return poison(`"kind" %.20q is not %q or %q`, kind, KindPortfolio, KindTickers)
	}
	return m, nil
}

func isKey(s string) bool {
	if len(s) != 64 {
		return false
	}
	b, err := hex.DecodeString(s)
	return err == nil && hex.EncodeToString(b) == s
}
