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
	"github.com/zsmseven/backend/pkg/indicators"
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

func send(t *testing.T, srv *fakexai.Server, r analysis.Request, effort string) (analysis.Completion, int) {
	t.Helper()
	req := map[string]any{"model": "grok-4.3", "messages": r.Messages, "max_completion_tokens": r.MaxCompletionTokens,
		"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": r.SchemaName, "schema": r.Schema, "strict": true}}}
	if effort != "" {
		req["reasoning_effort"] = effort
	}
	b, _ := json.Marshal(req)
	hr, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(string(b)))
	require.NoError(t, err)
	if r.CacheKey != "" {
		hr.Header.Set("x-grok-conv-id", r.CacheKey)
	}
	res, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var resp struct {
		Model   string
		Choices []struct {
			Message      struct{ Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			PromptTokens        int `json:"prompt_tokens"`
			CompletionTokens    int `json:"completion_tokens"`
			PromptTokensDetails struct {
				CachedTokens int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
			CompletionTokensDetails struct {
				ReasoningTokens int `json:"reasoning_tokens"`
			} `json:"completion_tokens_details"`
		}
	}
	if res.StatusCode != 200 {
		return analysis.Completion{}, res.StatusCode
	}
	require.NoError(t, json.Unmarshal(body, &resp))
	return analysis.Completion{Content: resp.Choices[0].Message.Content, FinishReason: resp.Choices[0].FinishReason, Model: resp.Model,
		Usage: analysis.Usage{PromptTokens: resp.Usage.PromptTokens, CachedPromptTokens: resp.Usage.PromptTokensDetails.CachedTokens,
			CompletionTokens: resp.Usage.CompletionTokens, ReasoningTokens: resp.Usage.CompletionTokensDetails.ReasoningTokens}}, res.StatusCode
}

func tickerCall(t *testing.T, symbols ...string) analysis.TickerCall {
	t.Helper()
	var entries []analysis.TickerEntry
	for _, s := range symbols {
		data, err := analysis.EncodeTicker(s, indicators.Snapshot{AsOf: "2026-11-27", Price: 10})
		require.NoError(t, err)
		entries = append(entries, analysis.TickerEntry{Symbol: s, Data: data})
	}
	return analysis.NewTickerCall(entries, nil, 1)
}

// The generator answers the ticker analyst validly; reasoning tokens are
// reported outside the completion cap, and grow with the answer at an
// effort; a cap too small cuts the answer with finish_reason "length".
func TestGeneratedTickerAnswers(t *testing.T) {
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{Lengths: fakexai.TypicalLengths}))
	c := tickerCall(t, "AAA", "BBB", "CCC")
	comp, code := send(t, srv, c.Request, "low")
	require.Equal(t, 200, code)
	assert.Equal(t, "stop", comp.FinishReason)
	a := analysis.ParseTickers(c, []byte(comp.Content))
	assert.Empty(t, a.Faulty, "%v", a.Problems)
	assert.Len(t, a.Scores["AAA"].Rationale, fakexai.TypicalLengths.Rationale)
	assert.Equal(t, 100+comp.Usage.CompletionTokens*3/10, comp.Usage.ReasoningTokens, "low effort: 100 + 0.3 × the answer")
	assert.Zero(t, comp.Usage.CachedPromptTokens, "nothing seen yet")

	// The same system message again, under the same conversation id: cached.
	comp, _ = send(t, srv, tickerCall(t, "DDD").Request, "low")
	assert.Equal(t, len(analysis.TickerSystemPrompt())/4, comp.Usage.CachedPromptTokens)

	other := tickerCall(t, "EEE", "FFF", "GGG")
	small := other.Request
	small.MaxCompletionTokens = 50
	comp, _ = send(t, srv, small, "low")
	assert.Equal(t, "length", comp.FinishReason)
	assert.Equal(t, 50, comp.Usage.CompletionTokens)
	a = analysis.ParseTickers(other, []byte(comp.Content))
	assert.NotEmpty(t, a.Faulty)
	assert.Equal(t, 3, srv.Paid())
	assert.Zero(t, srv.RepeatedPaid())
	send(t, srv, c.Request, "low")
	assert.Equal(t, 1, srv.RepeatedPaid(), "the same request paid twice")
}

// A ticker scored validly by a paid answer and asked about again in another
// paid request — whatever else differs — is paid again: counted per ticker
// and per answer. Asking again for a ticker an answer got wrong (a repair),
// or for other data of the same symbol, is not.
func TestRepeatedPaidCountsTickersScoredBefore(t *testing.T) {
	g := &fakexai.Generator{Edit: func(n int, _ string, ans map[string]any) {
		if n == 1 {
			ans["tickers"].([]any)[0].(map[string]any)["score"] = 150 // AAA invalid
		}
	}}
	srv := fakexai.New(t, fakexai.Generate(g))
	c := tickerCall(t, "AAA", "BBB", "CCC")
	comp, _ := send(t, srv, c.Request, "")
	a := analysis.ParseTickers(c, []byte(comp.Content))
	require.Equal(t, []string{"AAA"}, a.Faulty)
	aaa := c.Request
	repair := analysis.NewTickerCall([]analysis.TickerEntry{{Symbol: "AAA", Data: entryData(t, "AAA", "2026-11-27")}}, a.Problems, 1)
	send(t, srv, repair.Request, "")
	assert.Zero(t, srv.RepeatedPaid(), "a repair of the faulty ticker")
	assert.Zero(t, srv.TickersPaidAgain())

	again := analysis.NewTickerCall([]analysis.TickerEntry{{Symbol: "BBB", Data: entryData(t, "BBB", "2026-11-27")},
		{Symbol: "CCC", Data: entryData(t, "CCC", "2026-11-27")}, {Symbol: "DDD", Data: entryData(t, "DDD", "2026-11-27")}}, nil, 1)
	send(t, srv, again.Request, "")
	assert.Equal(t, 1, srv.RepeatedPaid(), "BBB and CCC were scored: the answer is paid again")
	assert.Equal(t, 2, srv.TickersPaidAgain())

	newDay := analysis.NewTickerCall([]analysis.TickerEntry{{Symbol: "BBB", Data: entryData(t, "BBB", "2026-11-30")}}, nil, 1)
	send(t, srv, newDay.Request, "")
	assert.Equal(t, 1, srv.RepeatedPaid(), "another day's data is new work")
	send(t, srv, aaa, "")
	assert.Equal(t, 2, srv.RepeatedPaid(), "the first request again: every ticker of it scored by now")
	assert.Equal(t, 5, srv.TickersPaidAgain())
	srv.Reset()
	assert.Zero(t, srv.TickersPaidAgain())
}

func entryData(t *testing.T, sym, asOf string) []byte {
	t.Helper()
	data, err := analysis.EncodeTicker(sym, indicators.Snapshot{AsOf: asOf, Price: 10})
	require.NoError(t, err)
	return data
}

// The generator answers the portfolio manager, and a repair of some of its
// parts with exactly those parts.
func TestGeneratedManagerAnswers(t *testing.T) {
	in := analysis.Input{Portfolio: "P", LastTradingDay: "2026-11-27"}
	var verdicts []analysis.TickerScore
	for i, s := range []string{"AAA", "BBB", "CCC", "DDD"} {
		q := 1.0
		in.Positions = append(in.Positions, analysis.Position{Symbol: s, Quantity: &q, Market: &indicators.Snapshot{AsOf: "2026-11-27", Price: 10}, Status: analysis.DataOK})
		sig := analysis.SignalFor(30 + 15*i)
		verdicts = append(verdicts, analysis.TickerScore{Ticker: s, Score: 30 + 15*i, Signal: sig, Action: analysis.ActionsFor(sig)[0], Confidence: "high", Rationale: "r", KeyRisk: "k"})
	}
	mi, err := analysis.NewManagerInput(in, verdicts)
	require.NoError(t, err)
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
	comp, _ := send(t, srv, mi.Request(analysis.OverviewParts, nil, 1), "low")
	a := analysis.ParseOverview(mi, analysis.OverviewParts, []byte(comp.Content))
	assert.Empty(t, a.Faulty, "%v", a.Problems)
	comp, _ = send(t, srv, mi.Request([]string{analysis.PartTopActions}, []string{"x"}, 1), "low")
	a = analysis.ParseOverview(mi, []string{analysis.PartTopActions}, []byte(comp.Content))
	assert.Equal(t, []string{analysis.PartTopActions}, a.Valid)
	assert.Empty(t, a.Problems, "only the part asked for")
}

// Edit breaks one part of an answer and fixes it in the next: an answer
// that fixes one part and breaks another.
func TestGeneratorEdit(t *testing.T) {
	g := &fakexai.Generator{Edit: func(n int, schema string, ans map[string]any) {
		tickers := ans["tickers"].([]any)
		switch n {
		case 1:
			tickers[0].(map[string]any)["score"] = 150
		case 2:
			tickers[0].(map[string]any)["signal"] = "strong_sell"
		}
	}}
	srv := fakexai.New(t, fakexai.Generate(g))
	c := tickerCall(t, "AAA", "BBB")
	comp, _ := send(t, srv, c.Request, "")
	assert.Equal(t, []string{"AAA"}, analysis.ParseTickers(c, []byte(comp.Content)).Faulty)
	comp, _ = send(t, srv, c.Request, "")
	a := analysis.ParseTickers(c, []byte(comp.Content))
	assert.Equal(t, []string{"AAA"}, a.Faulty)
	assert.Contains(t, a.Problems[0], "signal strong_sell does not match")
	comp, _ = send(t, srv, c.Request, "")
	assert.Empty(t, analysis.ParseTickers(c, []byte(comp.Content)).Faulty)
}

// Sample draws scores as a sampling model does; Score pins them.
func TestGeneratorSamples(t *testing.T) {
	srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{Sample: 10, Seed: 7, Score: func(string) int { return 50 }}))
	c := tickerCall(t, "AAA")
	seen := map[int]bool{}
	for range 20 {
		comp, _ := send(t, srv, c.Request, "")
		s := analysis.ParseTickers(c, []byte(comp.Content)).Scores["AAA"].Score
		assert.InDelta(t, 50, s, 10)
		seen[s] = true
	}
	assert.Greater(t, len(seen), 3, "different scores for the same data")
}

// A dropped answer is paid and never delivered; AfterAnswer is called once
// an answer was written whole.
func TestDroppedAndAnsweredHooks(t *testing.T) {
	drop := fakexai.Answer(`{"a":1}`)
	drop.Drop = true
	srv := fakexai.New(t, drop, fakexai.Answer(`{"a":2}`))
	var after []string
	srv.AfterAnswer = func(r fakexai.Request) { after = append(after, string(r.Body)) }
	_, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"n":1}`))
	assert.Error(t, err, "the connection is closed before an answer")
	code, _, _ := post(t, srv.URL, "", `{"n":2}`)
	assert.Equal(t, 200, code)
	assert.Equal(t, 2, srv.Paid())
	assert.Equal(t, 1, srv.Lost())
	assert.Equal(t, []string{`{"n":2}`}, after)
	u := srv.Usage()
	assert.Equal(t, 2400, u.PromptTokens, "both billed")
}
