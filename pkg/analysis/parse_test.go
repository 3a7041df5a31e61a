package analysis_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/pkg/analysis"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

var symbols = []string{"AAPL", "BRK.B", "MSFT"}

const validAnswer = `{"summary":"Tech-heavy.","analysis":"Long text.","tickers":[
 {"ticker":"MSFT","score":40,"signal":"sell","rationale":"Below MA50."},
 {"ticker":"AAPL","score":62,"signal":"buy","rationale":"RSI 41."},
 {"ticker":"BRK.B","score":50,"signal":"hold","rationale":"Flat."}]}`

func TestParseValid(t *testing.T) {
	res, err := analysis.Parse([]byte(validAnswer), symbols)
	require.NoError(t, err)
	assert.Equal(t, "Tech-heavy.", res.Summary)
	assert.Equal(t, []analysis.TickerScore{
		{Ticker: "AAPL", Score: 62, Signal: "buy", Rationale: "RSI 41."},
		{Ticker: "BRK.B", Score: 50, Signal: "hold", Rationale: "Flat."},
		{Ticker: "MSFT", Score: 40, Signal: "sell", Rationale: "Below MA50."},
	}, res.Tickers, "ordered like the portfolio's symbols")
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("x", analysis.MaxRationaleLen+1)
	cases := []struct {
		name   string
		answer string
		says   string
	}{
		{"not JSON", `I think AAPL is great`, "not one JSON object"},
		{"markdown fence", "```json\n" + validAnswer + "\n```", "not one JSON object"},
		{"trailing data", validAnswer + ` {"more":1}`, "after the JSON object"},
		{"unknown field", strings.Replace(validAnswer, `"summary"`, `"extra":1,"summary"`, 1), "unknown field"},
		{"unknown symbol", strings.Replace(validAnswer, `"BRK.B"`, `"TSLA"`, 1), `("TSLA"): ticker is not one of`},
		{"missing symbol", `{"summary":"s","analysis":"a","tickers":[{"ticker":"AAPL","score":1,"signal":"sell","rationale":"r"},{"ticker":"MSFT","score":1,"signal":"sell","rationale":"r"}]}`, "ticker BRK.B is missing"},
		{"duplicate symbol", strings.Replace(validAnswer, `"BRK.B"`, `"AAPL"`, 1), "more than once"},
		{"lower-case symbol", strings.Replace(validAnswer, `"AAPL"`, `"aapl"`, 1), `"aapl"`},
		{"score 150", strings.Replace(validAnswer, `"score":62`, `"score":150`, 1), "got \"150\""},
		{"score negative", strings.Replace(validAnswer, `"score":62`, `"score":-1`, 1), "integer from 0 to 100"},
		{"score fraction", strings.Replace(validAnswer, `"score":62`, `"score":50.5`, 1), "got \"50.5\""},
		{"score string", strings.Replace(validAnswer, `"score":62`, `"score":"80"`, 1), "integer from 0 to 100"},
		{"score exponent", strings.Replace(validAnswer, `"score":62`, `"score":6e1`, 1), "integer from 0 to 100"},
		{"score null", strings.Replace(validAnswer, `"score":62`, `"score":null`, 1), "integer from 0 to 100"},
		{"score missing", strings.Replace(validAnswer, `"score":62,`, ``, 1), "score is missing"},
		{"bad signal", strings.Replace(validAnswer, `"signal":"buy"`, `"signal":"BUY NOW"`, 1), "signal must be one of"},
		{"empty rationale", strings.Replace(validAnswer, `"RSI 41."`, `"  "`, 1), "rationale is empty"},
		{"long rationale", strings.Replace(validAnswer, `"RSI 41."`, `"`+long+`"`, 1), "rationale is 1001 characters"},
		{"no summary", strings.Replace(validAnswer, `"summary":"Tech-heavy.",`, ``, 1), "summary is missing"},
		{"no tickers", `{"summary":"s","analysis":"a"}`, `"tickers" is missing`},
		{"tickers not a list", `{"summary":"s","analysis":"a","tickers":{}}`, "not one JSON object"},
		{"array", `[]`, "not one JSON object"},
		{"empty", ``, "not one JSON object"},
		{"invalid UTF-8", "{\"summary\":\"\xff\"}", "UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := analysis.Parse([]byte(tc.answer), symbols)
			require.Error(t, err)
			assert.ErrorIs(t, err, analysis.ErrInvalidAnswer)
			assert.Contains(t, err.Error(), tc.says)
		})
	}
}

func TestParseListsEveryProblem(t *testing.T) {
	answer := `{"summary":"","analysis":"a","tickers":[{"ticker":"AAPL","score":150,"signal":"moon","rationale":"r"},{"ticker":"ZZZ","score":1,"signal":"sell","rationale":"r"}]}`
	_, err := analysis.Parse([]byte(answer), symbols)
	var inv *analysis.InvalidAnswerError
	require.ErrorAs(t, err, &inv)
	assert.Len(t, inv.Problems, 6, "summary, score, signal, ZZZ, BRK.B missing, MSFT missing: %q", inv.Problems)
}

func TestRepairMessages(t *testing.T) {
	p, err := analysis.BuildPrompt(sampleInput())
	require.NoError(t, err)
	msgs := analysis.RepairMessages(p, `{"bad":1}`, []string{"ticker AAPL is missing", "score\nmust be integer"})
	require.Len(t, msgs, 4)
	assert.Equal(t, p.Messages, msgs[:2])
	assert.Equal(t, analysis.Message{Role: "assistant", Content: `{"bad":1}`}, msgs[2])
	assert.Equal(t, "user", msgs[3].Role)
	assert.Contains(t, msgs[3].Content, "- ticker AAPL is missing\n- score must be integer\n")
	assert.Contains(t, msgs[3].Content, "AAPL, BRK.B, MSFT")
}

// FuzzParse: whatever the answer, Parse either returns a result that meets
// every rule or an *InvalidAnswerError; it never panics. The seeds are the
// recorded answers in testdata/answers (run by go test); new crashers found
// by `go test -fuzz FuzzParse` land in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "answers", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(validAnswer))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := analysis.Parse(data, symbols)
		if err != nil {
			var inv *analysis.InvalidAnswerError
			if !assert.ErrorAs(t, err, &inv) || len(inv.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			return
		}
		if len(res.Tickers) != len(symbols) {
			t.Fatalf("got %d tickers", len(res.Tickers))
		}
		for i, ts := range res.Tickers {
			if ts.Ticker != symbols[i] || ts.Score < 0 || ts.Score > 100 || ts.Rationale == "" {
				t.Fatalf("invalid ticker accepted: %+v", ts)
			}
		}
		if res.Summary == "" || res.Analysis == "" {
			t.Fatal("empty summary accepted")
		}
	})
}
