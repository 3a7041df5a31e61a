package analysis_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/pkg/analysis"
)

var symbols = []string{"AAPL", "BRK.B", "MSFT"}

const validAnswer = `{"tickers":[
 {"ticker":"MSFT","score":40,"signal":"sell","rationale":"Below MA50.","confidence":"medium","key_risk":"trend","action":"trim"},
 {"ticker":"AAPL","score":62,"signal":"buy","rationale":"RSI 41.","confidence":"high","key_risk":"valuation","action":"add"},
 {"ticker":"BRK.B","score":50,"signal":"hold","rationale":"Flat.","confidence":"low","key_risk":"stale data","action":"hold"}],
 "summary":"Tech-heavy.","overall_risk":"medium","concentration_flags":["AAPL is 65% of the weighted value"],
 "top_actions":[{"ticker":"AAPL","action":"add","reason":"Uptrend."},{"ticker":"MSFT","action":"trim","reason":"Weak."},{"ticker":"BRK.B","action":"hold","reason":"Flat."}],
 "analysis":"Long text."}`

func TestParseValid(t *testing.T) {
	res, err := analysis.Parse([]byte(validAnswer), symbols)
	require.NoError(t, err)
	assert.Equal(t, "Tech-heavy.", res.Summary)
	assert.Equal(t, "medium", res.OverallRisk)
	assert.Equal(t, []string{"AAPL is 65% of the weighted value"}, res.ConcentrationFlags)
	assert.Equal(t, []analysis.TopAction{{Ticker: "AAPL", Action: "add", Reason: "Uptrend."}, {Ticker: "MSFT", Action: "trim", Reason: "Weak."},
		{Ticker: "BRK.B", Action: "hold", Reason: "Flat."}}, res.TopActions)
	assert.Equal(t, []analysis.TickerScore{
		{Ticker: "AAPL", Score: 62, Signal: "buy", Rationale: "RSI 41.", Confidence: "high", KeyRisk: "valuation", Action: "add"},
		{Ticker: "BRK.B", Score: 50, Signal: "hold", Rationale: "Flat.", Confidence: "low", KeyRisk: "stale data", Action: "hold"},
		{Ticker: "MSFT", Score: 40, Signal: "sell", Rationale: "Below MA50.", Confidence: "medium", KeyRisk: "trend", Action: "trim"},
	}, res.Tickers, "ordered like the portfolio's symbols")
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("x", analysis.MaxRationaleLen+1)
	r := func(old, new string) string { return strings.Replace(validAnswer, old, new, 1) }
	cases := []struct {
		name   string
		answer string
		says   string
	}{
		{"not JSON", `I think AAPL is great`, "not one JSON object"},
		{"markdown fence", "```json\n" + validAnswer + "\n```", "not one JSON object"},
		{"trailing data", validAnswer + ` {"more":1}`, "after the JSON object"},
		{"unknown field", r(`"summary"`, `"extra":1,"summary"`), "unknown field"},
		{"unknown symbol", r(`"ticker":"BRK.B","score"`, `"ticker":"TSLA","score"`), `("TSLA"): ticker is not one of`},
		{"duplicate symbol", r(`"ticker":"BRK.B","score"`, `"ticker":"AAPL","score"`), "more than once"},
		{"lower-case symbol", r(`"ticker":"AAPL","score"`, `"ticker":"aapl","score"`), `"aapl"`},
		{"score 150", r(`"score":62`, `"score":150`), "got \"150\""},
		{"score negative", r(`"score":62`, `"score":-1`), "integer from 0 to 100"},
		{"score fraction", r(`"score":62`, `"score":50.5`), "got \"50.5\""},
		{"score string", r(`"score":62`, `"score":"80"`), "integer from 0 to 100"},
		{"score exponent", r(`"score":62`, `"score":6e1`), "integer from 0 to 100"},
		{"score null", r(`"score":62`, `"score":null`), "integer from 0 to 100"},
		{"score missing", r(`"score":62,`, ``), "score is missing"},
		{"bad signal", r(`"signal":"buy"`, `"signal":"BUY NOW"`), "signal must be one of"},
		// The example: a confident score with the opposite signal.
		{"signal off its band", r(`"score":62,"signal":"buy"`, `"score":95,"signal":"strong_sell"`), "signal strong_sell does not match score 95, whose band is strong_buy"},
		{"signal one band off", r(`"score":62`, `"score":75`), "signal buy does not match score 75"},
		{"action off its band", r(`"action":"add"}`, `"action":"exit"}`), "action exit does not fit score 62 (buy): use add or hold"},
		{"bad action", r(`"action":"add"}`, `"action":"buy more"}`), "action must be one of add, hold, trim, exit"},
		{"bad confidence", r(`"confidence":"high"`, `"confidence":"certain"`), "confidence must be one of low, medium, high"},
		{"no key risk", r(`"key_risk":"valuation",`, ``), "key_risk is missing"},
		{"empty rationale", r(`"RSI 41."`, `"  "`), "rationale is empty"},
		{"long rationale", r(`"RSI 41."`, `"`+long+`"`), "rationale is 601 characters"},
		{"no summary", r(`"summary":"Tech-heavy.",`, ``), "summary is missing"},
		{"bad overall risk", r(`"overall_risk":"medium"`, `"overall_risk":"extreme"`), "overall_risk must be one of"},
		{"no flags", r(`"concentration_flags":["AAPL is 65% of the weighted value"],`, ``), `"concentration_flags" is missing`},
		{"too many flags", r(`"concentration_flags":["AAPL is 65% of the weighted value"]`, `"concentration_flags":["a","b","c","d","e","f"]`), "at most 5"},
		{"two top actions", r(`,{"ticker":"BRK.B","action":"hold","reason":"Flat."}]`, `]`), "top_actions has 2 entries; give exactly 3"},
		{"top action of another action", r(`{"ticker":"AAPL","action":"add","reason":"Uptrend."}`, `{"ticker":"AAPL","action":"hold","reason":"Uptrend."}`),
			"action hold differs from the action add given for AAPL"},
		{"top action outside the portfolio", r(`{"ticker":"AAPL","action":"add"`, `{"ticker":"TSLA","action":"add"`), "ticker \"TSLA\" is not one of the portfolio's symbols"},
		{"top action twice", r(`{"ticker":"BRK.B","action":"hold","reason":"Flat."}`, `{"ticker":"AAPL","action":"add","reason":"Again."}`), "appears more than once"},
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
	answer := `{"tickers":[{"ticker":"AAPL","score":150,"signal":"moon","rationale":"r","confidence":"low","key_risk":"k","action":"add"},` +
		`{"ticker":"ZZZ","score":1,"signal":"strong_sell","rationale":"r","confidence":"low","key_risk":"k","action":"exit"}],` +
		`"summary":"","overall_risk":"low","concentration_flags":[],"top_actions":[],"analysis":"a"}`
	_, err := analysis.Parse([]byte(answer), symbols)
	var inv *analysis.InvalidAnswerError
	require.ErrorAs(t, err, &inv)
	assert.Len(t, inv.Problems, 7, "score, signal, ZZZ, BRK.B missing, MSFT missing, summary, top actions: %q", inv.Problems)
}

// Each kind of call accepts its own fields and no others.
func TestParseCallKinds(t *testing.T) {
	in := bigInput(60)
	p, err := analysis.BuildPrompt(in)
	require.NoError(t, err)
	batch := p.Calls[1] // the last 10 positions
	var ticks []string
	for _, s := range batch.Symbols {
		ticks = append(ticks, `{"ticker":"`+s+`","score":55,"signal":"hold","rationale":"r","confidence":"medium","key_risk":"k","action":"hold"}`)
	}
	tickersOnly := `{"tickers":[` + strings.Join(ticks, ",") + `]}`
	res, err := analysis.ParseCall(batch, []byte(tickersOnly))
	require.NoError(t, err)
	assert.Len(t, res.Tickers, 10)
	assert.Empty(t, res.Summary)

	_, err = analysis.ParseCall(batch, []byte(`{"tickers":[`+strings.Join(ticks, ",")+`],"summary":"s"}`))
	assert.ErrorContains(t, err, `field "summary" is not part of this answer`)
	_, err = analysis.ParseCall(batch, []byte(`{"tickers":[`+strings.Join(ticks[1:], ",")+`]}`))
	assert.ErrorContains(t, err, "ticker S0050 is missing")

	verdicts := analysis.Rules(in).Tickers
	pc, err := p.PortfolioCall(verdicts)
	require.NoError(t, err)
	top := func(i int) string {
		return `{"ticker":"` + verdicts[i].Ticker + `","action":"` + verdicts[i].Action + `","reason":"r"}`
	}
	overview := `{"summary":"s","overall_risk":"low","concentration_flags":[],"top_actions":[` + top(0) + "," + top(1) + "," + top(2) + `],"analysis":"a"}`
	res, err = analysis.ParseCall(pc, []byte(overview))
	require.NoError(t, err)
	assert.Len(t, res.TopActions, 3)
	assert.Empty(t, res.Tickers)
	wrong := strings.Replace(overview, `"action":"`+verdicts[0].Action+`"`, `"action":"exit"`, 1)
	if verdicts[0].Action != "exit" {
		_, err = analysis.ParseCall(pc, []byte(wrong))
		assert.ErrorContains(t, err, "differs from the action", "a top action must be the verdict's")
	}
	_, err = analysis.ParseCall(pc, []byte(`{"tickers":[],`+overview[1:]))
	assert.ErrorContains(t, err, `field "tickers" is not part of this answer`)
}

func TestRepairMessages(t *testing.T) {
	p, err := analysis.BuildPrompt(sampleInput())
	require.NoError(t, err)
	c := p.Calls[0]
	msgs := analysis.RepairMessages(c, `{"bad":1}`, []string{"ticker AAPL is missing", "score\nmust be integer"})
	require.Len(t, msgs, 4)
	assert.Equal(t, c.Messages, msgs[:2])
	assert.Equal(t, analysis.Message{Role: "assistant", Content: `{"bad":1}`}, msgs[2])
	assert.Equal(t, "user", msgs[3].Role)
	assert.Contains(t, msgs[3].Content, "- ticker AAPL is missing\n- score must be integer\n")
	assert.Contains(t, msgs[3].Content, "AAPL, BRK.B, MSFT")
}

// An answer cut off before its first character is not echoed: xAI refuses
// a message with empty content (400 "An empty message was provided").
func TestRepairAfterAnEmptyAnswerSendsNoEmptyMessage(t *testing.T) {
	p, err := analysis.BuildPrompt(sampleInput())
	require.NoError(t, err)
	for _, empty := range []string{"", "  \n"} {
		msgs := analysis.RepairMessages(p.Calls[0], empty, []string{"the answer was cut off at the completion token limit"})
		require.Len(t, msgs, 3, "system, user, the repair request: no assistant turn")
		for _, m := range msgs {
			assert.NotEmpty(t, strings.TrimSpace(m.Content), "%s message", m.Role)
			assert.NotEqual(t, analysis.RoleAssistant, m.Role)
		}
		assert.Contains(t, msgs[2].Content, "the previous answer was empty")
	}
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
		if len(res.Tickers) != len(symbols) || len(res.TopActions) != 3 {
			t.Fatalf("got %d tickers, %d top actions", len(res.Tickers), len(res.TopActions))
		}
		actions := map[string]string{}
		for i, ts := range res.Tickers {
			if ts.Ticker != symbols[i] || ts.Score < 0 || ts.Score > 100 || ts.Rationale == "" || ts.KeyRisk == "" ||
				ts.Signal != analysis.SignalFor(ts.Score) {
				t.Fatalf("invalid ticker accepted: %+v", ts)
			}
			actions[ts.Ticker] = ts.Action
		}
		for _, a := range res.TopActions {
			if actions[a.Ticker] != a.Action {
				t.Fatalf("top action %+v differs from its ticker's", a)
			}
		}
		if res.Summary == "" || res.Analysis == "" {
			t.Fatal("empty summary accepted")
		}
	})
}

// The recorded valid answer parses; the recorded bad ones say why not.
func TestRecordedAnswers(t *testing.T) {
	for file, says := range map[string]string{
		"valid.json": "", "bad_scores.json": `got "50.5"`, "truncated.json": "not one JSON object", "signal_mismatch.json": "signal strong_sell does not match score 95",
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "answers", file))
		require.NoError(t, err)
		_, err = analysis.Parse(b, symbols)
		if says == "" {
			assert.NoError(t, err, file)
			continue
		}
		assert.ErrorContains(t, err, says, file)
	}
}
