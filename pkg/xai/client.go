// Package xai is a client of xAI's chat completions API (OpenAI-compatible)
// for structured output, on plain net/http. It classifies every failure once
// (package retry), retries transient ones within the caller's deadline, and
// records what an audit needs: requested and reported model, system
// fingerprint, token usage, cost, latency and attempts.
//
// The API key is sent only in the Authorization header; it is never logged
// and is redacted from any server text quoted in an error.
package xai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/retry"
)

// Errors callers test with errors.Is.
var (
	// ErrTruncated: the answer stopped at the completion-token cap
	// (finish_reason "length"): the domain's analysis.ErrTruncated.
	ErrTruncated = analysis.ErrTruncated
	// ErrEmpty: the response carried no choice or no content.
	ErrEmpty = errors.New("response has no answer content")
	// ErrCreditsExhausted: a 429 saying credits or the spending limit are used up.
	ErrCreditsExhausted = errors.New("xAI credits or spending limit exhausted")
	// ErrRateLimited: a 429 that may succeed later.
	ErrRateLimited = errors.New("xAI rate limit")
	// ErrTooLarge: the response body is over the read cap; asking again
	// would pay for the same oversized answer.
	ErrTooLarge = errors.New("xAI response body too large")
	// ErrEmptyMessage: a request message has empty content, which xAI
	// refuses with 400 ("An empty message was provided"); it is not sent.
	ErrEmptyMessage = errors.New("a message with empty content would be refused by xAI")
)

// APIError is a non-2xx answer.
type APIError struct {
	Status int
	// Code and Message from the body: xAI's {"code","error"} or OpenAI's
	// {"error":{"message","code"}}; the key is redacted, length capped.
	Code    string
	Message string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("xAI HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Options configure a Client.
type Options struct {
	// URL is the full chat completions URL (deploy.VarXAIAPIURL); deploy.DefaultXAIAPIURL if empty.
	URL string
	// APIKey is sent as a Bearer token.
	APIKey string
	// Model is the requested model; deploy.DefaultXAIModel if empty.
	Model string
	// MaxCompletionTokens is the ceiling of a request's completion cap
	// (deploy.DefaultXAIMaxCompletionTokens if 0): a request asks for its
	// own cap within it. It bounds the visible answer; a reasoning model's
	// reasoning is bounded by the reasoning effort.
	MaxCompletionTokens int
	// HTTPClient; a client without its own timeout if nil (deadlines come
	// from the context).
	HTTPClient *http.Client
	// Retry policy for transient failures; a zero policy gets 3 attempts,
	// base 1 s, cap 20 s, Retry-After capped at 30 s.
	Retry *retry.Policy
	// Reserve is kept free before the context's deadline for the caller's
	// fallback and storage: the HTTP deadline is the context's minus Reserve.
	Reserve time.Duration
	// AttemptTimeout bounds one HTTP attempt (0: only the overall deadline),
	// so that a hung connection leaves time for a retry.
	AttemptTimeout time.Duration
	// DefaultTimeout bounds Complete when the context has no deadline (the
	// CLI); 5 minutes if 0.
	DefaultTimeout time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Client calls the chat completions API.
type Client struct {
	opts  Options
	http  *http.Client
	retry retry.Policy
	now   func() time.Time
	// noEffort is set once the API refused reasoning_effort for the model:
	// later requests of this client leave it out.
	noEffort atomic.Bool
}

// New returns a client. It does not contact the API.
func New(o Options) *Client {
	if o.URL == "" {
		o.URL = deploy.DefaultXAIAPIURL
	}
	if o.Model == "" {
		o.Model = deploy.DefaultXAIModel
	}
	if o.MaxCompletionTokens <= 0 {
		o.MaxCompletionTokens = deploy.DefaultXAIMaxCompletionTokens
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = 5 * time.Minute
	}
	c := &Client{opts: o, http: o.HTTPClient, now: o.Now}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if o.Retry != nil {
		c.retry = *o.Retry
	} else {
		c.retry = retry.Policy{Attempts: 3, Base: time.Second, Cap: 20 * time.Second, MaxRetryAfter: 30 * time.Second}
	}
	return c
}

// Model is the requested model.
func (c *Client) Model() string { return c.opts.Model }

// AcceptsReasoningEffort reports whether the model takes reasoning_effort.
// xAI's Grok 4 family before 4.3 (grok-4, grok-4-0709, grok-4-fast-*,
// grok-4-1-fast-*, grok-4.20-*), grok-code-fast and the non-mini Grok 3 and
// Grok 2 models answer 400 to it ("Model does not support parameter
// reasoningEffort"); grok-4.3 and grok-3-mini take low/medium/high (and
// grok-4.3 "none"). A model this list does not know is sent the effort, and
// if the API refuses it the client drops it for good (Complete).
func AcceptsReasoningEffort(model string) bool {
	m := strings.ToLower(model)
	switch {
	case m == "grok-4", strings.HasPrefix(m, "grok-4-"), strings.HasPrefix(m, "grok-4.20"), strings.HasPrefix(m, "grok-code"),
		strings.HasPrefix(m, "grok-2"), strings.HasPrefix(m, "grok-3") && !strings.HasPrefix(m, "grok-3-mini"):
		return false
	}
	return true
}

type wireRequest struct {
	Model               string         `json:"model"`
	Messages            []wireMessage  `json:"messages"`
	Temperature         float64        `json:"temperature"`
	MaxCompletionTokens int            `json:"max_completion_tokens"`
	ReasoningEffort     string         `json:"reasoning_effort,omitempty"`
	ResponseFormat      responseFormat `json:"response_format"`
}

type wireMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type responseFormat struct {
	Type       string     `json:"type"`
	JSONSchema jsonSchema `json:"json_schema"`
}

type jsonSchema struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
	Strict bool            `json:"strict"`
}

type wireResponse struct {
	ID                string `json:"id"`
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Message struct {
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int    `json:"prompt_tokens"`
		CompletionTokens    int    `json:"completion_tokens"`
		TotalTokens         int    `json:"total_tokens"`
		ReasoningTokens     int    `json:"reasoning_tokens"`
		CostInUSDTicks      *int64 `json:"cost_in_usd_ticks"`
		PromptTokensDetails *struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		CompletionTokensDetails *struct {
			ReasoningTokens int `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
	} `json:"usage"`
}

// usdTicks is xAI's unit of usage.cost_in_usd_ticks: 1 USD = 1e10 ticks.
const usdTicks = 1e10

// maxBody bounds a response body read into memory.
const maxBody = 8 << 20

// Complete sends the request and returns the answer. Transient failures
// (429 other than exhausted credits, 5xx, timeouts, resets, truncated
// bodies) are retried within the context's deadline minus Reserve, each
// attempt within AttemptTimeout; 400/401/403/404/422 and exhausted credits
// are permanent (retry.IsPermanent). A message with empty content is never
// sent (ErrEmptyMessage). The request's cache key, when it has one, is sent
// as the x-grok-conv-id header (ConvIDHeader). The completion cap is the request's, within the
// client's ceiling; reasoning_effort is sent when the request has one and
// the model takes it — a 400 refusing it is answered by asking once more
// without it, and the client leaves it out from then on. A "length" finish
// reason returns the response with analysis.ErrTruncated (its content may
// be empty), any other but "stop" with an *analysis.UnfinishedError: both
// permanent, as the same request gives the same end.
func (c *Client) Complete(ctx context.Context, req analysis.Request) (analysis.Completion, error) {
	start := c.now()
	var resp analysis.Completion
	msgs := make([]wireMessage, len(req.Messages))
	for i, m := range req.Messages {
		if m.Content == "" {
			return resp, retry.Permanent(fmt.Errorf("%w: message %d (%s)", ErrEmptyMessage, i, m.Role))
		}
		msgs[i] = wireMessage{Role: m.Role, Content: m.Content}
	}
	limit := c.opts.MaxCompletionTokens
	if req.MaxCompletionTokens > 0 {
		limit = min(limit, req.MaxCompletionTokens)
	}
	wr := wireRequest{
		Model: c.opts.Model, Messages: msgs, Temperature: 0, MaxCompletionTokens: limit,
		ResponseFormat: responseFormat{Type: "json_schema", JSONSchema: jsonSchema{Name: req.SchemaName, Schema: req.Schema, Strict: true}},
	}
	if req.ReasoningEffort != "" && AcceptsReasoningEffort(c.opts.Model) && !c.noEffort.Load() {
		wr.ReasoningEffort = req.ReasoningEffort
	}
	body, err := json.Marshal(wr)
	if err != nil {
		return resp, retry.Permanent(fmt.Errorf("encode xAI request: %w", err))
	}
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); ok {
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-c.opts.Reserve))
	} else {
		ctx, cancel = context.WithTimeout(ctx, c.opts.DefaultTimeout)
	}
	defer cancel()
	attempts, err := c.retry.Do(ctx, func(ctx context.Context, _ int) error {
		r, err := c.once(ctx, body, req.CacheKey)
		if r != nil {
			c.fill(&resp, r)
		}
		return err
	})
	if wr.ReasoningEffort != "" && refusesEffort(err) {
		// Refused before any work: not billed. Once more without it.
		c.noEffort.Store(true)
		wr.ReasoningEffort = ""
		if body, err = json.Marshal(wr); err == nil {
			var more int
			more, err = c.retry.Do(ctx, func(ctx context.Context, _ int) error {
				r, err := c.once(ctx, body, req.CacheKey)
				if r != nil {
					c.fill(&resp, r)
				}
				return err
			})
			attempts += more
		}
	}
	resp.Attempts = attempts
	resp.Latency = c.now().Sub(start)
	if err != nil {
		return resp, err
	}
	switch resp.FinishReason {
	case "stop", "":
		return resp, nil
	case "length":
		return resp, retry.Permanent(ErrTruncated)
	default:
		return resp, retry.Permanent(&analysis.UnfinishedError{FinishReason: resp.FinishReason})
	}
}

// refusesEffort reports whether err is a 400 refusing reasoning_effort.
func refusesEffort(err error) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		return false
	}
	m := strings.ToLower(apiErr.Message)
	return strings.Contains(m, "reasoning") && strings.Contains(m, "effort")
}

func (c *Client) fill(resp *analysis.Completion, r *wireResponse) {
	resp.ID, resp.Model, resp.SystemFingerprint = r.ID, r.Model, r.SystemFingerprint
	if len(r.Choices) > 0 {
		ch := r.Choices[0]
		resp.FinishReason = ch.FinishReason
		if ch.Message.Content != nil {
			resp.Content = *ch.Message.Content
		}
	}
	if u := r.Usage; u != nil {
		resp.Usage = analysis.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens,
			ReasoningTokens: u.ReasoningTokens}
		if d := u.PromptTokensDetails; d != nil {
			resp.Usage.CachedPromptTokens = d.CachedTokens
		}
		if u.CostInUSDTicks != nil {
			usd := float64(*u.CostInUSDTicks) / usdTicks
			resp.Usage.CostUSD = &usd
		}
		if d := u.CompletionTokensDetails; d != nil && d.ReasoningTokens > 0 {
			resp.Usage.ReasoningTokens = d.ReasoningTokens
		}
	}
}

// ConvIDHeader carries a request's cache key: xAI routes requests with the
// same conversation id to the same prompt cache, so that their shared
// leading messages are served from it (billed as cached prompt tokens).
const ConvIDHeader = "x-grok-conv-id"

// once makes one HTTP request and classifies its outcome.
func (c *Client) once(ctx context.Context, body []byte, convID string) (*wireResponse, error) {
	if c.opts.AttemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.AttemptTimeout)
		defer cancel()
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opts.URL, bytes.NewReader(body))
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("build xAI request: %w", err))
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("Authorization", "Bearer "+c.opts.APIKey)
	if convID != "" {
		hr.Header.Set(ConvIDHeader, convID)
	}
	res, err := c.http.Do(hr)
	if err != nil {
		// Timeouts, resets, refused connections: worth another try. The
		// url.Error names the URL, which carries no secret.
		return nil, retry.Transient(fmt.Errorf("call xAI: %w", c.redactErr(err)), 0)
	}
	defer res.Body.Close()
	// Read one byte past the cap so an oversized body is told apart from a
	// cut-off one (which is transient and retried).
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBody+1))
	if err != nil {
		return nil, retry.Transient(fmt.Errorf("read xAI response (HTTP %d): %w", res.StatusCode, err), 0)
	}
	if len(data) > maxBody {
		return nil, retry.Permanent(fmt.Errorf("%w: HTTP %d, more than %d bytes", ErrTooLarge, res.StatusCode, maxBody))
	}
	if res.StatusCode/100 != 2 {
		return nil, c.classify(res, data)
	}
	var wr wireResponse
	if err := json.Unmarshal(data, &wr); err != nil {
		err = fmt.Errorf("decode xAI response (%d bytes): %w", len(data), err)
		if json.Valid(data) {
			// A complete body of another shape: asking again would pay
			// for the same answer.
			return nil, retry.Permanent(err)
		}
		// A cut-off or garbled body is most likely a transport problem.
		return nil, retry.Transient(err, 0)
	}
	if len(wr.Choices) == 0 {
		return &wr, retry.Permanent(ErrEmpty)
	}
	// A cut-off or filtered answer may carry no content: its finish reason
	// says why (Complete).
	if fr := wr.Choices[0].FinishReason; fr != "stop" && fr != "" {
		return &wr, nil
	}
	if m := wr.Choices[0].Message; m.Content == nil || *m.Content == "" {
		if m.Refusal != nil && *m.Refusal != "" {
			return &wr, retry.Permanent(fmt.Errorf("%w: model refused: %s", ErrEmpty, c.clip(*m.Refusal)))
		}
		return &wr, retry.Permanent(ErrEmpty)
	}
	return &wr, nil
}

func (c *Client) classify(res *http.Response, data []byte) error {
	e := &APIError{Status: res.StatusCode}
	var flat struct {
		Code  json.RawMessage `json:"code"`
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &flat) == nil {
		e.Code = c.clip(rawText(flat.Code))
		var nested struct {
			Message string          `json:"message"`
			Code    json.RawMessage `json:"code"`
			Type    string          `json:"type"`
		}
		// xAI: "error" is a string; OpenAI: an object with message and code.
		if len(flat.Error) > 0 && flat.Error[0] == '{' && json.Unmarshal(flat.Error, &nested) == nil {
			e.Message = c.clip(nested.Message)
			if e.Code == "" {
				e.Code = c.clip(rawText(nested.Code))
			}
		} else {
			e.Message = c.clip(rawText(flat.Error))
		}
	} else {
		e.Message = c.clip(string(data))
	}
	switch s := res.StatusCode; {
	case s == http.StatusTooManyRequests:
		text := strings.ToLower(e.Code + " " + e.Message)
		for _, w := range []string{"credit", "spending limit", "spending-limit", "exhausted", "quota", "billing"} {
			if strings.Contains(text, w) {
				return retry.Permanent(fmt.Errorf("%w: %w", ErrCreditsExhausted, e))
			}
		}
		return retry.Transient(fmt.Errorf("%w: %w", ErrRateLimited, e), retryAfter(res.Header.Get("Retry-After"), c.now()))
	case s >= 500, s == http.StatusRequestTimeout:
		return retry.Transient(e, retryAfter(res.Header.Get("Retry-After"), c.now()))
	default:
		// 400 (bad argument or bad key), 401, 403, 404 (unknown model), 422 and
		// any other 4xx: the same request will fail the same way.
		return retry.Permanent(e)
	}
}

// rawText renders a JSON string or other value as text.
func rawText(r json.RawMessage) string {
	if len(r) == 0 || string(r) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	return string(r)
}

// clip redacts the key and caps server text quoted in errors.
func (c *Client) clip(s string) string {
	if c.opts.APIKey != "" {
		s = strings.ReplaceAll(s, c.opts.APIKey, "[redacted]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func (c *Client) redactErr(err error) error {
	if c.opts.APIKey != "" && strings.Contains(err.Error(), c.opts.APIKey) {
		return errors.New(strings.ReplaceAll(err.Error(), c.opts.APIKey, "[redacted]"))
	}
	return err
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
