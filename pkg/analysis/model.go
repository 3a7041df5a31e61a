package analysis

import (
	"encoding/json"
	"errors"
	"fmt"
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
	// Schema is the encoded JSON schema, its properties in the order the
	// answer should be written (Call.Schema).
	Schema json.RawMessage
	// MaxCompletionTokens caps the visible answer of this call (0: the
	// adapter's ceiling). For reasoning models it does not bound the
	// reasoning, which ReasoningEffort does.
	MaxCompletionTokens int
	// ReasoningEffort is "low", "medium", "high" or "none"; "" sends none.
	// An adapter omits it for models that reject it.
	ReasoningEffort string
	// CacheKey groups requests that share their leading messages, so that
	// the provider's prompt cache can serve them (xAI: the x-grok-conv-id
	// header); stable per prompt version and kind of call. "" sends none.
	CacheKey string
}

// Usage is the token accounting of a completion.
type Usage struct {
	PromptTokens int
	// CachedPromptTokens are the prompt tokens served from the provider's
	// prompt cache (billed at a lower rate), part of PromptTokens.
	CachedPromptTokens int
	// CompletionTokens are the visible answer's tokens.
	CompletionTokens int
	TotalTokens      int
	// ReasoningTokens are the tokens a reasoning model spent thinking:
	// billed as output, not part of the visible answer, and not bounded by
	// the completion cap.
	ReasoningTokens int
	// CostUSD is the cost the provider reported; nil when it reported none.
	CostUSD *float64
}

// Add sums two usages (a repair attempt adds to the first).
func (u Usage) Add(o Usage) Usage {
	r := Usage{
		PromptTokens: u.PromptTokens + o.PromptTokens, CachedPromptTokens: u.CachedPromptTokens + o.CachedPromptTokens,
		CompletionTokens: u.CompletionTokens + o.CompletionTokens,
		TotalTokens:      u.TotalTokens + o.TotalTokens, ReasoningTokens: u.ReasoningTokens + o.ReasoningTokens,
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
	Content string
	// FinishReason is the provider's: "stop" for a complete answer.
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

// ErrTruncated means the answer stopped at the completion-token cap
// (finish reason "length"); its content, possibly empty, is not a complete
// answer. Model adapters wrap it.
var ErrTruncated = errors.New("answer truncated at the completion token limit")

// ErrUnfinished is wrapped by *UnfinishedError: the model stopped for a
// reason other than a complete answer or the token cap.
var ErrUnfinished = errors.New("answer not finished")

// UnfinishedError is an answer that ended with another finish reason than
// "stop" or "length" — "content_filter" above all. Asking again would pay
// for the same refusal, so the analyzer does not repair it.
type UnfinishedError struct {
	FinishReason string
}

func (e *UnfinishedError) Error() string {
	return fmt.Sprintf("answer not finished: finish_reason %q", e.FinishReason)
}

// Is makes errors.Is(err, ErrUnfinished) true.
func (e *UnfinishedError) Is(target error) bool { return target == ErrUnfinished }

// FinishContentFilter is the finish reason of an answer withheld by the
// provider's content filter.
const FinishContentFilter = "content_filter"
