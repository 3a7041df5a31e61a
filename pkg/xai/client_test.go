package xai_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/xai"
)

func recorded(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

// noSleep makes retries immediate; the waits asked for are recorded.
func noSleep(waits *[]time.Duration) *retry.Policy {
	return &retry.Policy{Attempts: 3, Base: time.Second, Cap: 10 * time.Second, MaxRetryAfter: 30 * time.Second,
		Rand: func() float64 { return 0.5 },
		Sleep: func(_ context.Context, d time.Duration) error {
			*waits = append(*waits, d)
			return nil
		}}
}

func request() analysis.Request {
	return analysis.Request{
		Messages:   []analysis.Message{{Role: "system", Content: "instructions"}, {Role: "user", Content: "data"}},
		SchemaName: "portfolio_analysis",
		Schema:     json.RawMessage(`{"type":"object"}`),
	}
}

func TestCompleteRecordedSuccess(t *testing.T) {
	srv := fakexai.New(t, fakexai.Status(200, recorded(t, "chat_completion.json")))
	c := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, MaxCompletionTokens: 1234})
	resp, err := c.Complete(context.Background(), request())
	require.NoError(t, err)

	assert.Equal(t, "grok-4.3", c.Model())
	assert.Equal(t, "grok-4.3", resp.Model)
	assert.Equal(t, "fp_4b2c9e1d7a", resp.SystemFingerprint)
	assert.Equal(t, "stop", resp.FinishReason)
	assert.Contains(t, resp.Content, `"ticker":"AAPL"`)
	// cost_in_usd_ticks 37525000 at 1e10 ticks a dollar.
	require.NotNil(t, resp.Usage.CostUSD)
	assert.InDelta(t, 0.0037525, *resp.Usage.CostUSD, 1e-12)
	resp.Usage.CostUSD = nil
	assert.Equal(t, analysis.Usage{PromptTokens: 1834, CachedPromptTokens: 640, CompletionTokens: 412, TotalTokens: 2790, ReasoningTokens: 544}, resp.Usage)
	assert.Equal(t, 1, resp.Attempts)

	// The wire request: what xAI documents.
	req := srv.Requests()[0]
	assert.Equal(t, "POST", req.Method)
	assert.Equal(t, "/v1/chat/completions", req.Path)
	assert.Equal(t, "Bearer "+fakexai.Key, req.Authorization)
	assert.Equal(t, "grok-4.3", req.Decoded.Model)
	require.NotNil(t, req.Decoded.Temperature)
	assert.Equal(t, 0.0, *req.Decoded.Temperature)
	assert.Equal(t, 1234, req.Decoded.MaxCompletionTokens, "the ceiling when the request asks for no cap")
	assert.Nil(t, req.Decoded.ReasoningEffort, "none asked for")
	assert.Equal(t, "json_schema", req.Decoded.ResponseFormat.Type)
	assert.Equal(t, "portfolio_analysis", req.Decoded.ResponseFormat.JSONSchema.Name)
	assert.True(t, req.Decoded.ResponseFormat.JSONSchema.Strict)
	assert.JSONEq(t, `{"type":"object"}`, string(req.Decoded.ResponseFormat.JSONSchema.Schema))
	assert.Len(t, req.Decoded.Messages, 2)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(req.Body, &raw))
	assert.NotContains(t, raw, "max_tokens", "max_tokens is deprecated")
}

func TestCompleteLegacyReasoningTokens(t *testing.T) {
	srv := fakexai.New(t, fakexai.Status(200, recorded(t, "chat_completion_legacy_usage.json")))
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Model: "grok-3"}).Complete(context.Background(), request())
	require.NoError(t, err)
	assert.Equal(t, analysis.Usage{PromptTokens: 100, CompletionTokens: 20, TotalTokens: 150, ReasoningTokens: 30}, resp.Usage)
	ok := resp.Usage.CostUSD != nil
	assert.False(t, ok, "no cost reported")
}

func TestCompleteErrorClasses(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		file      string
		header    map[string]string
		permanent bool
		calls     int
		is        error
		contains  string
	}{
		{"400 bad key", 400, "error_400_bad_key.json", nil, true, 1, nil, "Incorrect API key"},
		{"401", 401, "error_401.json", nil, true, 1, nil, "No API key"},
		{"403", 403, "error_403.json", nil, true, 1, nil, "blocked"},
		{"404 unknown model", 404, "error_404_unknown_model.json", nil, true, 1, nil, "grok-9 does not exist"},
		{"422", 422, "error_422.json", nil, true, 1, nil, "deserialize"},
		{"429 credits", 429, "error_429_credits.json", nil, true, 1, xai.ErrCreditsExhausted, "spending limit"},
		{"429 rate limit", 429, "error_429_rate_limit.json", map[string]string{"Retry-After": "7"}, false, 3, xai.ErrRateLimited, "rate limit"},
		{"500 OpenAI shape", 500, "error_500_openai_shape.json", nil, false, 3, nil, "The server had an error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply := fakexai.Status(tc.status, recorded(t, tc.file))
			if tc.header != nil {
				reply.Header = map[string][]string{}
				for k, v := range tc.header {
					reply.Header[k] = []string{v}
				}
			}
			srv := fakexai.New(t, reply)
			var waits []time.Duration
			resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: noSleep(&waits)}).Complete(context.Background(), request())
			require.Error(t, err)
			assert.Equal(t, tc.permanent, retry.IsPermanent(err))
			assert.Equal(t, tc.calls, srv.Calls())
			assert.Equal(t, tc.calls, resp.Attempts)
			var apiErr *xai.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.status, apiErr.Status)
			assert.Contains(t, err.Error(), tc.contains)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			if tc.header != nil {
				assert.Equal(t, []time.Duration{7 * time.Second, 7 * time.Second}, waits, "Retry-After honoured")
			}
			assert.NotContains(t, err.Error(), fakexai.Key)
		})
	}
}

func TestCompleteServerErrorThenSuccess(t *testing.T) {
	srv := fakexai.New(t, fakexai.ServerError(), fakexai.Answer(`{"x":1}`))
	var waits []time.Duration
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: noSleep(&waits)}).Complete(context.Background(), request())
	require.NoError(t, err)
	assert.Equal(t, 2, srv.Calls())
	assert.Equal(t, 2, resp.Attempts)
	assert.Equal(t, []time.Duration{500 * time.Millisecond}, waits, "full jitter: 0.5 × base")
	assert.Equal(t, `{"x":1}`, resp.Content)
}

func TestCompleteTruncated(t *testing.T) {
	srv := fakexai.New(t, fakexai.Status(200, recorded(t, "chat_completion_length.json")))
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key}).Complete(context.Background(), request())
	require.ErrorIs(t, err, xai.ErrTruncated)
	assert.True(t, retry.IsPermanent(err), "retrying the same request gives the same cut")
	assert.Equal(t, 1, srv.Calls())
	assert.Equal(t, "length", resp.FinishReason)
	assert.Equal(t, 8000, resp.Usage.CompletionTokens, "usage is recorded even for a cut answer")
	assert.Equal(t, 7800, resp.Usage.ReasoningTokens)
}

// A reasoning model can spend the whole budget before its first visible
// character: an empty cut-off answer is ErrTruncated, not ErrEmpty.
func TestCompleteEmptyCutOff(t *testing.T) {
	srv := fakexai.New(t, fakexai.CutOff(""))
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key}).Complete(context.Background(), request())
	require.ErrorIs(t, err, xai.ErrTruncated)
	assert.NotErrorIs(t, err, xai.ErrEmpty)
	assert.Empty(t, resp.Content)
	assert.Equal(t, 2500, resp.Usage.ReasoningTokens)
}

// content_filter is not an answer and not retried: asking again pays for
// the same refusal.
func TestCompleteContentFilter(t *testing.T) {
	srv := fakexai.New(t, fakexai.ContentFiltered(), fakexai.Answer(`{}`))
	var waits []time.Duration
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: noSleep(&waits)}).Complete(context.Background(), request())
	require.ErrorIs(t, err, analysis.ErrUnfinished)
	var un *analysis.UnfinishedError
	require.ErrorAs(t, err, &un)
	assert.Equal(t, "content_filter", un.FinishReason)
	assert.True(t, retry.IsPermanent(err))
	assert.Equal(t, 1, srv.Calls())
	assert.Equal(t, "content_filter", resp.FinishReason)
}

// The request's own cap is sent, within the client's ceiling, and the
// reasoning effort with it.
func TestCompleteCapAndReasoningEffort(t *testing.T) {
	srv := fakexai.New(t, fakexai.Answer(`{}`))
	c := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, MaxCompletionTokens: 16000})
	req := request()
	req.MaxCompletionTokens, req.ReasoningEffort = 4050, "low"
	_, err := c.Complete(context.Background(), req)
	require.NoError(t, err)
	req.MaxCompletionTokens = 90000
	_, err = c.Complete(context.Background(), req)
	require.NoError(t, err)
	reqs := srv.Requests()
	assert.Equal(t, 4050, reqs[0].Decoded.MaxCompletionTokens)
	assert.Equal(t, 16000, reqs[1].Decoded.MaxCompletionTokens, "never above the ceiling")
	require.NotNil(t, reqs[0].Decoded.ReasoningEffort)
	assert.Equal(t, "low", *reqs[0].Decoded.ReasoningEffort)
}

// A model known to refuse reasoning_effort never gets it; one the client
// does not know costs one refused request per client, then never again.
func TestCompleteReasoningEffortRefused(t *testing.T) {
	for _, m := range []string{"grok-4", "grok-4-0709", "grok-4-fast-reasoning", "grok-4-1-fast-non-reasoning", "grok-4.20-0309-reasoning", "grok-code-fast-1", "grok-3"} {
		assert.False(t, xai.AcceptsReasoningEffort(m), m)
	}
	for _, m := range []string{"grok-4.3", "grok-3-mini", "grok-3-mini-fast"} {
		assert.True(t, xai.AcceptsReasoningEffort(m), m)
	}
	req := request()
	req.ReasoningEffort = "low"

	srv := fakexai.New(t, fakexai.Answer(`{}`))
	srv.NoReasoningEffort = []string{"grok-4-0709"}
	_, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Model: "grok-4-0709"}).Complete(context.Background(), req)
	require.NoError(t, err)
	assert.Zero(t, srv.Refused())
	assert.Nil(t, srv.Requests()[0].Decoded.ReasoningEffort)

	srv = fakexai.New(t, fakexai.Answer(`{}`))
	srv.NoReasoningEffort = []string{"grok-9"}
	c := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Model: "grok-9"})
	resp, err := c.Complete(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, 2, resp.Attempts)
	assert.Equal(t, 1, srv.Refused())
	_, err = c.Complete(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, 1, srv.Refused(), "not sent again")
	assert.Equal(t, 3, srv.Calls())
}

// A message with empty content would be refused (400): it is not sent.
func TestCompleteNeverSendsAnEmptyMessage(t *testing.T) {
	srv := fakexai.New(t, fakexai.Answer(`{}`))
	req := request()
	req.Messages = append(req.Messages, analysis.Message{Role: "assistant", Content: ""})
	_, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key}).Complete(context.Background(), req)
	require.ErrorIs(t, err, xai.ErrEmptyMessage)
	assert.True(t, retry.IsPermanent(err))
	assert.Zero(t, srv.Calls())
}

func TestCompleteAttemptTimeoutThenSuccess(t *testing.T) {
	srv := fakexai.New(t, fakexai.Slow(fakexai.Answer(`{"late":true}`), 5*time.Second), fakexai.Answer(`{"ok":true}`))
	var waits []time.Duration
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: noSleep(&waits), AttemptTimeout: 100 * time.Millisecond}).
		Complete(context.Background(), request())
	require.NoError(t, err)
	assert.Equal(t, `{"ok":true}`, resp.Content)
	assert.Equal(t, 2, resp.Attempts)
}

func TestCompleteDeadlineLeavesReserve(t *testing.T) {
	srv := fakexai.New(t, fakexai.Slow(fakexai.Answer(`{}`), 10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var waits []time.Duration
	_, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: noSleep(&waits), Reserve: 1900 * time.Millisecond}).Complete(ctx, request())
	require.Error(t, err)
	assert.False(t, retry.IsPermanent(err), "a timeout is transient")
	assert.NoError(t, ctx.Err(), "the caller still has its reserve when the client gives up")
}

func TestCompleteResetMidBody(t *testing.T) {
	half := fakexai.Answer(`{"a":1}`)
	half.Hang = true
	srv := fakexai.New(t, half, fakexai.Answer(`{"a":2}`))
	var waits []time.Duration
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: noSleep(&waits)}).Complete(context.Background(), request())
	require.NoError(t, err)
	assert.Equal(t, `{"a":2}`, resp.Content)
	assert.Equal(t, 2, srv.Calls())
}

func TestCompleteKeyNeverInErrors(t *testing.T) {
	const key = "xai-SECRET-abcdef"
	srv := fakexai.New(t, fakexai.Status(400, `{"code":"bad","error":"Incorrect API key provided: `+key+`"}`))
	_, err := xai.New(xai.Options{URL: srv.URL, APIKey: key}).Complete(context.Background(), request())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), key)
	assert.Contains(t, err.Error(), "[redacted]")
}

func TestCompleteEmptyChoices(t *testing.T) {
	srv := fakexai.New(t, fakexai.Status(200, `{"id":"x","model":"grok-4.3","choices":[],"usage":{"prompt_tokens":1}}`))
	_, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key}).Complete(context.Background(), request())
	require.ErrorIs(t, err, xai.ErrEmpty)
	assert.True(t, retry.IsPermanent(err))
}

func TestCompleteGarbledBodyIsTransient(t *testing.T) {
	srv := fakexai.New(t, fakexai.Status(200, `{"id":"x","choices":[{"mess`), fakexai.Answer(`{"b":1}`))
	var waits []time.Duration
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: noSleep(&waits)}).Complete(context.Background(), request())
	require.NoError(t, err)
	assert.Equal(t, 2, resp.Attempts)
}

func TestUsageAdd(t *testing.T) {
	a := analysis.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3, ReasoningTokens: 4, CostUSD: ptr(0.25)}
	b := analysis.Usage{PromptTokens: 10, CompletionTokens: 20, TotalTokens: 30, ReasoningTokens: 40}
	assert.Equal(t, analysis.Usage{PromptTokens: 11, CompletionTokens: 22, TotalTokens: 33, ReasoningTokens: 44, CostUSD: ptr(0.25)}, a.Add(b))
	assert.Nil(t, b.Add(b).CostUSD)
}

func TestErrorsMentionNoBodyWhenNotJSON(t *testing.T) {
	srv := fakexai.New(t, fakexai.Status(403, "<html>blocked</html>"))
	_, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key}).Complete(context.Background(), request())
	require.Error(t, err)
	assert.True(t, retry.IsPermanent(err))
	assert.True(t, strings.Contains(err.Error(), "HTTP 403"))
	assert.False(t, errors.Is(err, xai.ErrRateLimited))
}

func ptr[T any](v T) *T { return &v }

// A body over the read cap is not cut and mistaken for a garbled transfer
// (which would be retried, paying again): it fails once, permanently.
func TestCompleteOversizedBodyNotRetried(t *testing.T) {
	huge := fakexai.Answer(strings.Repeat("x", 9<<20))
	srv := fakexai.New(t, huge)
	var waits []time.Duration
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: noSleep(&waits)}).Complete(context.Background(), request())
	require.ErrorIs(t, err, xai.ErrTooLarge)
	assert.True(t, retry.IsPermanent(err))
	assert.Equal(t, 1, srv.Calls())
	assert.Equal(t, 1, resp.Attempts)
}

// A complete 200 body of an unexpected shape is not a transfer problem:
// asking again would pay for the same answer. Only a cut-off (invalid JSON)
// body is retried (TestCompleteGarbledBodyIsTransient).
func TestCompleteUnexpectedShapeNotRetried(t *testing.T) {
	srv := fakexai.New(t, fakexai.Status(200, `{"id":"x","model":"grok-4.3","choices":[{"message":{"content":"{}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":"many"}}`))
	var waits []time.Duration
	resp, err := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key, Retry: noSleep(&waits)}).Complete(context.Background(), request())
	require.Error(t, err)
	assert.True(t, retry.IsPermanent(err))
	assert.Contains(t, err.Error(), "decode xAI response")
	assert.Equal(t, 1, srv.Calls())
	assert.Equal(t, 1, resp.Attempts)
}

// A request's cache key goes out as x-grok-conv-id, so that requests that
// share their leading messages reach the same prompt cache; none without
// one. Cached prompt tokens are counted from the answer.
func TestCompleteSendsTheConversationID(t *testing.T) {
	srv := fakexai.New(t, fakexai.Completion{Content: `{}`, PromptTokens: 100, CachedTokens: 60}.Reply())
	c := xai.New(xai.Options{URL: srv.URL, APIKey: fakexai.Key})
	req := request()
	req.CacheKey = "zsm-ticker-analyst-2026-12-07.1"
	resp, err := c.Complete(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, 60, resp.Usage.CachedPromptTokens)
	_, err = c.Complete(context.Background(), request())
	require.NoError(t, err)
	reqs := srv.Requests()
	assert.Equal(t, "zsm-ticker-analyst-2026-12-07.1", reqs[0].ConvID)
	assert.Empty(t, reqs[1].ConvID)
}
