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
