package analysis

import (
	"errors"
	"time"
)

// This file is the analysis-model port in the domain's words: what the
// analyzer asks of a language model and what it gets back. An adapter
// (package xai) translates to and from its provider's wire format; a second
// provider is a second adapter of the same types.

// Request is one structured-output completion: the chat messages and the
// JSON schema the answer must follow (strict).
type Request struct {
	Messages   []Message
	SchemaName string
	Schema     map[string]any
}

// Usage is the token accounting of a completion.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
	TotalTokens      int
	// ReasoningTokens are the completion tokens a reasoning model spent
	// thinking (billed, not part of the visible answer).
	ReasoningTokens int
	// CostUSD is the cost the provider reported; nil when it reported none.
	CostUSD *float64
}

// Add sums two usages (a repair attempt adds to the first).
func (u Usage) Add(o Usage) Usage {
	r := Usage{
		PromptTokens: u.PromptTokens + o.PromptTokens, CompletionTokens: u.CompletionTokens + o.CompletionTokens,
		TotalTokens: u.TotalTokens + o.TotalTokens, ReasoningTokens: u.ReasoningTokens + o.ReasoningTokens,
	}
	if u.CostUSD != nil || o.CostUSD != nil {
		var c float64
		if u.CostUSD != nil {
			c += *u.CostUSD
		}
		if o.CostUSD != nil {
			c += *o.CostUSD
		}
		r.CostUSD = &c
	}
	return r
}

// Completion is a model's answer with what an audit needs. It is filled as
// far as known even when the model call fails (attempts, latency; usage
// when the provider answered, e.g. a cut-off answer).
type Completion struct {
	Content      string
	FinishReason string
	// ID is the provider's id of the completion.
	ID string
	// Model is the model the provider reports having used (it may differ
	// from the one requested: renamed models redirect).
	Model             string
	SystemFingerprint string
	Usage             Usage
	// Latency is the wall time of the call, retries and waits included.
	Latency time.Duration
	// Attempts is the number of requests made.
	Attempts int
}

// ErrTruncated means the answer stopped at the completion-token cap; its
// content is not a complete answer. Model adapters wrap it.
var ErrTruncated = errors.New("answer truncated at the completion token limit")
