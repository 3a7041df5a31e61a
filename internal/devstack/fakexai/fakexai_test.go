package fakexai_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/pkg/analysis"
)

func post(t *testing.T, url, auth, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b), res.Header
}

func TestScriptRecordsAndRepeatsLast(t *testing.T) {
	srv := fakexai.New(t, fakexai.RateLimited(3), fakexai.Answer(`{"a":1}`))
	code, _, h := post(t, srv.URL, "Bearer k", `{"model":"grok-4.3","temperature":0,"messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(t, 429, code)
	assert.Equal(t, "3", h.Get("Retry-After"))
	for range 2 {
		code, body, _ := post(t, srv.URL, "Bearer k", `{}`)
		assert.Equal(t, 200, code)
		var resp struct {
			Model   string
			Choices []struct {
				Message      struct{ Content string }
				FinishReason string `json:"finish_reason"`
			}
			Usage struct {
				CostInUSDTicks int64 `json:"cost_in_usd_ticks"`
			}
		}
		require.NoError(t, json.Unmarshal([]byte(body), &resp))
		assert.Equal(t, `{"a":1}`, resp.Choices[0].Message.Content)
		assert.Equal(t, "stop", resp.Choices[0].FinishReason)
		assert.Equal(t, int64(1234500), resp.Usage.CostInUSDTicks)
	}
	assert.Equal(t, 3, srv.Calls())
	reqs := srv.Requests()
	assert.Equal(t, "grok-4.3", reqs[0].Decoded.Model)
	assert.Equal(t, []fakexai.Message{{Role: "user", Content: "hi"}}, reqs[0].Decoded.Messages)
	assert.Equal(t, "Bearer k", reqs[0].Authorization)
	assert.Equal(t, "/v1/chat/completions", reqs[0].Path)

	srv.Script(fakexai.ServerError())
	code, _, _ = post(t, srv.URL, "", `{}`)
	assert.Equal(t, 500, code)
}

func TestRequireKey(t *testing.T) {
	srv := fakexai.New(t, fakexai.Answer(`{}`))
	srv.RequireKey = fakexai.Key
	code, body, _ := post(t, srv.URL, "Bearer wrong", `{}`)
	assert.Equal(t, 400, code)
	assert.Contains(t, body, `"code"`)
	code, _, _ = post(t, srv.URL, "Bearer "+fakexai.Key, `{}`)
	assert.Equal(t, 200, code)
}

func TestEmptyScript(t *testing.T) {
	srv := fakexai.New(t)
	code, body, _ := post(t, srv.URL, "", `{}`)
	assert.Equal(t, 500, code)
	assert.Contains(t, body, "no reply scripted")
}

// xAI refuses a message with empty content, whatever the script says, and
// the script is not consumed.
func TestEmptyMessageRefused(t *testing.T) {
	srv := fakexai.New(t, fakexai.Answer(`{"a":1}`))
	code, body, _ := post(t, srv.URL, "Bearer k", `{"model":"grok-4.3","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":""}]}`)
	assert.Equal(t, 400, code)
	assert.JSONEq(t, fakexai.EmptyMessageBody, body)
	assert.Equal(t, 1, srv.Refused())
	code, _, _ = post(t, srv.URL, "Bearer k", `{"model":"grok-4.3","messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(t, 200, code, "the scripted answer is still there")
}

func TestReasoningEffortRefusedForModelsWithoutIt(t *testing.T) {
	srv := fakexai.New(t, fakexai.Answer(`{"a":1}`))
	srv.NoReasoningEffort = []string{"grok-4-0709"}
	code, body, _ := post(t, srv.URL, "Bearer k", `{"model":"grok-4-0709","reasoning_effort":"low","messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(t, 400, code)
	assert.Contains(t, body, "does not support parameter reasoningEffort")
	code, _, _ = post(t, srv.URL, "Bearer k", `{"model":"grok-4-0709","messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(t, 200, code)
	code, _, _ = post(t, srv.URL, "Bearer k", `{"model":"grok-4.3","reasoning_effort":"low","messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(t, 200, code)
}

// The generator answers a real analysis request validly; reasoning tokens
// are reported outside the completion cap, and a cap too small cuts the
// answer with finish_reason "length".
func TestGeneratedAnswers(t *testing.T) {
	in := analysis.Input{Portfolio: "P", LastTradingDay: "2026-11-27"}
	for _, s := range []string{"AAA", "BBB", "CCC", "DDD"} {
		price := 10.0
		in.Positions = append(in.Positions, analysis.Position{Symbol: s, Price: &price, AsOf: "2026-11-27", Status: analysis.DataOK})
	}
	in.Positions[3] = analysis.Position{Symbol: "DDD", Status: analysis.DataMissing}
	p, err := analysis.BuildPrompt(in)
	require.NoError(t, err)
	c := p.Calls[0]
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	req := map[string]any{"model": "grok-4.3", "messages": c.Messages, "max_completion_tokens": c.MaxCompletionTokens, "reasoning_effort": "low",
		"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": c.SchemaName, "schema": c.Schema, "strict": true}}}
	b, _ := json.Marshal(req)
	code, body, _ := post(t, srv.URL, "Bearer k", string(b))
	require.Equal(t, 200, code)
	var resp struct {
		Choices []struct {
			Message      struct{ Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			CompletionTokens        int `json:"completion_tokens"`
			CompletionTokensDetails struct {
				ReasoningTokens int `json:"reasoning_tokens"`
			} `json:"completion_tokens_details"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	assert.Equal(t, "stop", resp.Choices[0].FinishReason)
	res, err := analysis.ParseCall(c, []byte(resp.Choices[0].Message.Content))
	require.NoError(t, err)
	assert.Equal(t, 50, res.Tickers[3].Score, "missing data: neutral")
	assert.Equal(t, 300, resp.Usage.CompletionTokensDetails.ReasoningTokens, "low effort")

	req["max_completion_tokens"] = 50
	b, _ = json.Marshal(req)
	_, body, _ = post(t, srv.URL, "Bearer k", string(b))
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	assert.Equal(t, "length", resp.Choices[0].FinishReason)
	assert.Equal(t, 50, resp.Usage.CompletionTokens)
	assert.Equal(t, 300, resp.Usage.CompletionTokensDetails.ReasoningTokens, "reasoning is not bounded by the cap")
}
