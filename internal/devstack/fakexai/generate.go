package fakexai

import (
	"encoding/json"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
)

// Generator answers any analysis request validly, as a model would. It
// writes exactly the members the request's schema requires — so it answers
// the ticker analyst ("tickers"), the portfolio manager (its parts, or the
// parts a repair asks for) and the one-call design before them (every
// position and the portfolio, "analysis" text included) alike — from the
// data block of the first user message: each stock it is asked to score
// (missing data: 50, low, hold), and top actions from the verdicts or
// scores it reads, each with an action that fits.
//
// Usage is what xAI reports: prompt tokens ≈ (messages + schema) bytes ÷
// 4; cached prompt tokens, the leading messages this conversation
// (x-grok-conv-id) sent before, ÷ 4; completion tokens ≈ answer bytes ÷ 4 —
// cut at max_completion_tokens with finish_reason "length" — and reasoning
// tokens by reasoning effort, outside that cap; the cost at grok-4.3's
// prices.
type Generator struct {
	// Model is the model reported (deploy.DefaultXAIModel if "").
	Model string
	// Score gives a ticker's score; nil: a hash of the symbol into 25–85.
	Score func(ticker string) int
	// Sample draws every score as a sampling model does: the ticker's score
	// plus a uniform draw in ±Sample, per answer (0: the same every time).
	Sample int
	// Seed seeds the draws (a fixed seed, a reproducible run).
	Seed uint64
	// Lengths are the texts' lengths in characters; zero: short texts.
	Lengths Lengths
	// ReasoningTokens overrides the reasoning tokens of every answer when
	// positive; else they follow the effort (Reasoning).
	ReasoningTokens int
	// TokensPerSecond, when positive, makes each answer take FirstToken
	// plus its completion and reasoning tokens at this rate (a model's
	// speed), added to the Reply's Delay.
	TokensPerSecond float64
	FirstToken      time.Duration
	// Edit, when set, changes the n-th generated answer (1-based) before it
	// is sent — its members as decoded JSON (tickers a []any of
	// map[string]any) — so that a test breaks one part, or fixes one and
	// breaks another. schema is the request's schema name.
	Edit func(n int, schema string, answer map[string]any)

	seen atomic.Int64
	mu   sync.Mutex
	rng  *rand.Rand
}

// Lengths are the generated texts' lengths, in characters.
type Lengths struct {
	Rationale, KeyRisk, Summary, Analysis, Reason, Flag int
	// Flags is how many concentration flags are written.
	Flags int
}

// TypicalLengths are what a model writes within the prompts' limits when
// asked for "one to three sentences" and the like: the benchmark's
// assumption, the same for every design.
var TypicalLengths = Lengths{Rationale: 260, KeyRisk: 60, Summary: 480, Analysis: 2000, Reason: 140, Flag: 90, Flags: 2}

// MaxLengths are the prompts' limits themselves.
var MaxLengths = Lengths{Rationale: analysis.MaxRationaleLen, KeyRisk: analysis.MaxKeyRiskLen, Summary: analysis.MaxSummaryLen,
	Analysis: analysis.MaxAnalysisLen, Reason: analysis.MaxReasonLen, Flag: analysis.MaxFlagLen, Flags: analysis.MaxFlags}

// Reasoning is the reasoning tokens of an answer of completion tokens at an
// effort: a base and a share of the visible answer (none 0; low 100 + 0.3 ×;
// medium 400 + 1 ×; high 1,000 + 3 ×; not sent: medium) — the work a
// reasoning model does grows with what it is asked to write.
func Reasoning(effort string, completion int) int {
	switch effort {
	case "none":
		return 0
	case "low":
		return 100 + completion*3/10
	case "high":
		return 1000 + 3*completion
	default:
		return 400 + completion
	}
}

// Generate is a 200 reply built by g for each request.
func Generate(g *Generator) Reply { return Reply{Status: 200, Generate: g} }

type genBlock struct {
	Tickers []struct {
		Symbol string `json:"symbol"`
	} `json:"tickers"`
	Positions []struct {
		Symbol     string `json:"symbol"`
		DataStatus string `json:"data_status"`
		Signal     string `json:"signal"`
		Action     string `json:"action"`
	} `json:"positions"`
	Verdicts []struct {
		Ticker string `json:"ticker"`
		Action string `json:"action"`
		Signal string `json:"signal"`
	} `json:"verdicts"`
}

type genTicker struct {
	Ticker     string `json:"ticker"`
	Score      int    `json:"score"`
	Signal     string `json:"signal"`
	Rationale  string `json:"rationale"`
	Confidence string `json:"confidence"`
	KeyRisk    string `json:"key_risk"`
	Action     string `json:"action"`
}

func (g *Generator) score(ticker string) int {
	base := 0
	if g.Score != nil {
		base = g.Score(ticker)
	} else {
		h := fnv.New32a()
		h.Write([]byte(ticker))
		base = 25 + int(h.Sum32()%61)
	}
	if g.Sample > 0 {
		g.mu.Lock()
		if g.rng == nil {
			g.rng = rand.New(rand.NewPCG(g.Seed, g.Seed^0x9e3779b97f4a7c15))
		}
		base += g.rng.IntN(2*g.Sample+1) - g.Sample
		g.mu.Unlock()
	}
	return min(max(base, 0), 100)
}

// text is a generated text of n characters (at least one word).
func text(word string, n int) string {
	if n <= len(word) {
		return word
	}
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(word)
	}
	return b.String()[:n]
}

func (g *Generator) len(n, short int) int {
	if n > 0 {
		return n
	}
	return short
}

// schemaParts are the members a request's schema requires, in order.
func schemaParts(schema json.RawMessage) []string {
	var s struct {
		Required []string `json:"required"`
	}
	_ = json.Unmarshal(schema, &s)
	return s.Required
}

// dataBlock is the JSON between the first <…_data> tag pair of the first
// user message.
func dataBlock(msgs []Message) genBlock {
	var block genBlock
	for _, m := range msgs {
		if m.Role != "user" {
			continue
		}
		i := strings.Index(m.Content, "_data>\n")
		j := strings.LastIndex(m.Content, "\n</")
		if i >= 0 && j > i {
			_ = json.Unmarshal([]byte(m.Content[i+len("_data>\n"):j]), &block)
		}
		break
	}
	return block
}

func (g *Generator) reply(req ChatRequest, base Reply, cachedBytes int) Reply {
	n := int(g.seen.Add(1))
	prompt := len(req.ResponseFormat.JSONSchema.Schema)
	for _, m := range req.Messages {
		prompt += len(m.Content)
	}
	block := dataBlock(req.Messages)
	kind := req.ResponseFormat.JSONSchema.Name
	parts := schemaParts(req.ResponseFormat.JSONSchema.Schema)
	ans := map[string]any{}
	type verdict struct{ ticker, action, signal string }
	var order []verdict
	if slices.Contains(parts, "tickers") {
		var tickers []genTicker
		rate := func(sym, status string) {
			t := genTicker{Ticker: sym, Score: g.score(sym), Confidence: analysis.LevelHigh,
				KeyRisk: text("market risk", g.len(g.Lengths.KeyRisk, 0)), Rationale: text("Generated from the data block.", g.len(g.Lengths.Rationale, 0))}
			switch status {
			case analysis.DataMissing:
				t.Score, t.Confidence = 50, analysis.LevelLow
			case analysis.DataStale:
				t.Confidence = analysis.LevelMedium
			}
			t.Signal = analysis.SignalFor(t.Score)
			t.Action = analysis.ActionsFor(t.Signal)[0]
			tickers = append(tickers, t)
			order = append(order, verdict{t.Ticker, t.Action, t.Signal})
		}
		for _, t := range block.Tickers {
			rate(t.Symbol, "")
		}
		for _, p := range block.Positions {
			rate(p.Symbol, p.DataStatus)
		}
		ans["tickers"] = tickers
	} else {
		for _, p := range block.Positions {
			order = append(order, verdict{p.Symbol, p.Action, p.Signal})
		}
		for _, v := range block.Verdicts {
			order = append(order, verdict{v.Ticker, v.Action, v.Signal})
		}
	}
	for _, part := range parts {
		switch part {
		case "summary":
			ans[part] = text("A generated overview of the portfolio.", g.len(g.Lengths.Summary, 0))
		case "overall_risk":
			ans[part] = analysis.LevelMedium
		case "concentration_flags":
			flags := []string{}
			for range g.Lengths.Flags {
				flags = append(flags, text("A generated concentration.", g.Lengths.Flag))
			}
			ans[part] = flags
		case "top_actions":
			tops := []map[string]string{}
			for _, v := range order[:min(analysis.TopActions, len(order))] {
				tops = append(tops, map[string]string{"ticker": v.ticker, "action": v.action, "reason": text("generated", g.len(g.Lengths.Reason, 0))})
			}
			ans[part] = tops
		case "analysis":
			ans[part] = text("Generated analysis text.", g.len(g.Lengths.Analysis, 0))
		}
	}
	if g.Edit != nil {
		// As plain JSON values, for the test to change.
		b, _ := json.Marshal(ans)
		var plain map[string]any
		_ = json.Unmarshal(b, &plain)
		g.Edit(n, kind, plain)
		ans = plain
	}
	content := marshalOrdered(ans, parts)
	c := Completion{Content: content, Model: g.Model, PromptTokens: prompt/4 + 1, CompletionTokens: len(content)/4 + 1, CachedTokens: cachedBytes / 4}
	if c.Model == "" {
		c.Model = deploy.DefaultXAIModel
	}
	if limit := req.MaxCompletionTokens; limit > 0 && c.CompletionTokens > limit {
		c.Content, c.CompletionTokens, c.FinishReason = c.Content[:min(len(c.Content), 4*limit)], limit, "length"
	}
	effort := "omit"
	if req.ReasoningEffort != nil {
		effort = *req.ReasoningEffort
	}
	c.ReasoningTokens = Reasoning(effort, c.CompletionTokens)
	if g.ReasoningTokens > 0 {
		c.ReasoningTokens = g.ReasoningTokens
	}
	// grok-4.3: $1.25 per million input tokens ($0.20 cached), $2.50 per
	// million output tokens; 1 USD = 1e10 ticks.
	c.CostInUSDTicks = int64(c.PromptTokens-c.CachedTokens)*12500 + int64(c.CachedTokens)*2000 + int64(c.CompletionTokens+c.ReasoningTokens)*25000
	r := c.Reply()
	r.Delay, r.Drop = base.Delay, base.Drop
	if g.TokensPerSecond > 0 {
		r.Delay += g.FirstToken + time.Duration(float64(c.CompletionTokens+c.ReasoningTokens)/g.TokensPerSecond*float64(time.Second))
	}
	return r
}

// marshalOrdered writes the answer's members in the schema's order (then
// any a test's Edit added), as a model following the schema does.
func marshalOrdered(ans map[string]any, parts []string) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	write := func(k string) {
		v, ok := ans[k]
		if !ok {
			return
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(v)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	for _, p := range parts {
		write(p)
	}
	var extra []string
	for k := range ans {
		if !slices.Contains(parts, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		write(k)
	}
	b.WriteByte('}')
	return b.String()
}
