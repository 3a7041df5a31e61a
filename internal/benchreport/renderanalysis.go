package main

import (
	"fmt"
	"strings"

	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
)

// The analysis sections of the report run from analysisHeading to
// coldHeading (`-only analysis` replaces them).
const (
	analysisHeading = "## Analysis in two levels against the one-call design\n"
	coldHeading     = "## Cold start\n"
)

// xAI's prices for grok-4.3, per million tokens: input and output from
// x.ai's model page (../shared/design/facts.md); cached input $0.20, as
// published by resellers listing xAI's prices (docs.apiyi.com's model page,
// apidog's grok-4.3 guide) — x.ai's page was not reachable from this machine.
const (
	inputPrice  = 1.25
	cachedPrice = 0.20
	outputPrice = 2.50
	// nightsPerMonth: the analysis runs Tuesday to Saturday, 261 nights a
	// year (docs/cost.md).
	nightsPerMonth = 21.75
)

// analysisNightUSD is a night's cost in USD from a design's benchmark metrics:
// uncached input, cached input and output (visible and reasoning) at their
// prices.
func analysisNightUSD(m map[string]float64) float64 {
	in, cached := m["input-tokens"], m["cached-tokens"]
	return ((in-cached)*inputPrice + cached*cachedPrice + (m["completion-tokens"]+m["reasoning-tokens"])*outputPrice) / 1e6
}

// designTargets are the targets: a design's cost as a share of
// today's, by portfolios and portfolio manager.
var designTargets = map[int]map[string]float64{
	1000:  {deploy.ManagerModel: 0.45, deploy.ManagerRules: 0.15},
	10000: {deploy.ManagerModel: 0.40, deploy.ManagerRules: 0.10},
}

// renderAnalysis writes the analysis sections: the designs side by side,
// the night as deployed, the requests' sizes.
func renderAnalysis(r report) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("%s", strings.TrimSpace(analysisHeading))
	p("")
	p("`go test -run '^$' -bench BenchmarkAnalysisDesigns -benchtime 1x ./internal/benchreport`: in one run, on the same portfolios and against the same local xAI server, "+
		"**today** — the design of commit %s, the base of this one: one call per portfolio of up to 50 positions scoring every position inside it, run with that commit's own "+
		"analyzer, prompt and xAI client, built in a temporary `git worktree` of it (`internal/benchreport/testdata/legacydriver`) — and this tree's two levels: each held ticker "+
		"scored once, in batches of %d planned by the fan-out and queued first, then each portfolio's overview written by the **model** (one call) or by the **rules** (no call). "+
		"Portfolios of %d positions; every ticker of the universe held at least once, the other draws Zipf-distributed (s = %.2f): a few names in most portfolios, a long tail. "+
		"The local server writes answers of typical length (rationale %d characters, key risk %d, summary %d, the one-call design's analysis text %d; the same for every design), "+
		"samples every score ±10 around the ticker's as a model does, bills prompt tokens ≈ (messages + schema) bytes ÷ 4, cached tokens the leading messages its prompt cache saw "+
		"under the same `x-grok-conv-id` (or none: today's design sends no id, and is given the same cache), output tokens ≈ answer bytes ÷ 4, and reasoning at effort low = 100 + 0.3 × the answer. "+
		"It answers at %d tokens a second after %s (grok-4.3's reported speed) on a clock scaled by %d, with the default concurrency of %d. "+
		"Cost at grok-4.3's prices: $%.2f per million input tokens, $%.2f cached, $%.2f output (reasoning bills as output); a month is %.2f nights.",
		todaysDesign, analysis.TickerBatchSize, designPositions, designZipfS, fakexai.TypicalLengths.Rationale, fakexai.TypicalLengths.KeyRisk,
		fakexai.TypicalLengths.Summary, fakexai.TypicalLengths.Analysis, designTokensPerSecond, designFirstToken, designScale, designConcurrency,
		inputPrice, cachedPrice, outputPrice, nightsPerMonth)
	p("")
	p("| portfolios | tickers | design | xAI calls | input tokens | of which cached | output tokens (visible + reasoning) | cost a night | cost a month | vs today | target | distinct scores of a ticker in one night (max / mean) | paid twice |")
	p("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
	for _, size := range designSizes {
		base := 0.0
		for _, design := range []string{"today", deploy.ManagerModel, deploy.ManagerRules} {
			g, ok := find(r.AnalysisDesigns, fmt.Sprintf("BenchmarkAnalysisDesigns/portfolios=%d/tickers=%d/design=%s", size.portfolios, size.tickers, design))
			if !ok {
				continue
			}
			m := g.Metrics
			cost := analysisNightUSD(m)
			ratio, target, label := "—", "—", "today (one call a portfolio)"
			if design == "today" {
				base = cost
			} else {
				label = "two levels, " + map[string]string{deploy.ManagerModel: "model manager", deploy.ManagerRules: "rules manager"}[design]
				if base > 0 {
					ratio = fmt.Sprintf("**%.1f %%**", 100*cost/base)
					t := designTargets[size.portfolios][design]
					verdict := "met"
					if cost/base > t {
						verdict = "**not met**"
					}
					target = fmt.Sprintf("≤ %.0f %%: %s", 100*t, verdict)
				}
			}
			p("| %s | %.0f | %s | %s | %s | %s | %s + %s | $%.2f | $%.0f | %s | %s | %.0f / %.2f | %.0f |", roughly(float64(size.portfolios)), m["tickers"], label,
				roughly(m["calls"]), roughly(m["input-tokens"]), roughly(m["cached-tokens"]), roughly(m["completion-tokens"]), roughly(m["reasoning-tokens"]),
				cost, cost*nightsPerMonth, ratio, target, m["max-scores/ticker"], m["mean-scores/ticker"], m["paid-again"])
		}
	}
	p("")
	p("Wall time at the default concurrency (%d), and where it goes:", designConcurrency)
	p("")
	p("| portfolios | design | measured (scaled clock) | production-equivalent: measured × %d | the answers' time ÷ %d (the floor at this concurrency) | analyses ok / fallback | messages handed back |", designScale, designConcurrency)
	p("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
	for _, size := range designSizes {
		for _, design := range []string{"today", deploy.ManagerModel, deploy.ManagerRules} {
			g, ok := find(r.AnalysisDesigns, fmt.Sprintf("BenchmarkAnalysisDesigns/portfolios=%d/tickers=%d/design=%s", size.portfolios, size.tickers, design))
			if !ok {
				continue
			}
			m := g.Metrics
			p("| %s | %s | %.1f s | %.0f min | %.0f min | %.0f / %.0f | %.0f |", roughly(float64(size.portfolios)), design, m["wall-s"], m["prod-wall-min"], m["answering-min"],
				m["ok"], m["fallback"], m["handed-back"])
		}
	}
	p("")
	p("Reading the tables:")
	p("")
	p("- **One score per ticker and night.** Today each portfolio's call scores its positions: a ticker held by many portfolios is scored many times and, " +
		"as a model samples, differently (up to the maximum shown for one ticker). The two levels ask the model once per ticker; every portfolio reads that score: one per ticker, identical everywhere.")
	p("- **Where the saving comes from.** The positions' scoring (the bulk of the output) is paid once per distinct ticker instead of once per position; " +
		"the model manager's call reads weights, P&L and verdicts (no indicators, no rationales) and writes the overview only (the analysis text is composed from the verdicts, not generated). " +
		"The rules manager pays for the tickers alone.")
	p("- **Time.** The production-equivalent multiplies the measured time by the clock's scale, this machine's CPU time included (prompt building, JSON, HTTP on 2 cores): an upper bound. "+
		"The answers' time ÷ %d is what the model's answering alone takes at this concurrency. The model manager's night is bounded by one short call per portfolio; "+
		"the rules manager's by the tickers' batches alone.", designConcurrency)
	p("- **Paid twice** counts answers paid for a request identical to one paid before (counted at the server): 0 in every design here; the fault scenarios of [reliability.md](reliability.md) show it stays 0 through failed saves, crashes, deadlines and redeliveries.")
	p("")
	renderNight(p, r)
	renderPrompts(p, r)
	return b.String()
}

// renderNight writes the night of analyses as deployed (BenchmarkAnalysisNight).
func renderNight(p func(string, ...any), r report) {
	g, ok := find(r.AnalysisNight, "BenchmarkAnalysisNight")
	if !ok {
		return
	}
	m := g.Metrics
	p("### A night of analyses through the deployed wiring: 1,000 portfolios")
	p("")
	p("`go test -run '^$' -bench BenchmarkAnalysisNight -benchtime 1x ./internal/benchreport`: analyzePortfolio wired as deployed (`analyzeportfolio.Build` over the real "+
		"repositories on dynalite, the real SQS sender to `localsqs`, the real xAI client to `fakexai`) analyzes %d portfolios of %d positions over %d tickers. "+
		"`{\"portfolio_name\":\"*\"}` plans the night's tickers into batches and queues them, then one message per portfolio; the analysis queue is then consumed as the deployed event source does: "+
		"one message per invocation, at most %d invocations at once (`deploy.DefaultAnalysisConcurrency`). The local xAI server generates a valid answer for every request "+
		"after **30 s**.", nightPortfolios, nightPositions, nightTickers, nightConcurrency)
	p("")
	p("**Scaled clock**: every duration the deployed system waits is divided by %d — the 30 s answer is %s, the 300 s invocation deadline %s, the 120 s attempt timeout %s, "+
		"the 15 s reserve %s. The local DynamoDB work (dynalite, one Node process; about two full scans of the shared tables per portfolio, as `portfoliodb` reads them) is real time on this machine, not scaled.",
		nightScale, scaled(nightAnswer), scaled(deploy.AnalyzePortfolio.Timeout), scaled(deploy.DefaultXAIAttemptTimeout), scaled(deploy.DefaultXAIReserve))
	p("")
	p("| measure | result |")
	p("| --- | ---: |")
	p("| portfolios queued by the fan-out / ticker batches queued before them | %.0f / %.0f |", m["queued"], m["ticker-batches"])
	p("| invocations of the queue consumer | %.0f |", m["invocations"])
	p("| **measured** wall time, fan-out to empty queue (scaled clock) | %.1f s |", m["wall-s"])
	p("| **production-equivalent** wall time: measured × %d (an upper bound: it scales the unscaled local DynamoDB time too) | %.0f min |", nightScale, m["prod-wall-min"])
	p("| ideal at 30 s an answer: 1,000 × 30 s ÷ %d | %.0f min |", nightConcurrency, m["ideal-min"])
	p("| peak concurrency: consumer invocations at once / xAI requests in flight | %.0f / %.0f |", m["peak-invocations"], m["peak-xai-requests"])
	p("| xAI calls (paid): the ticker batches and one overview per portfolio | %.0f |", m["calls"])
	p("| requests refused for breaking the API's rules (empty message, reasoning_effort) | %.0f |", m["refused"])
	p("| portfolios analyzed (`%s`) / analyses stored | %.0f / %.0f |", deploy.AnalysesAnalyzed.Name, m["analyzed"], m["items"])
	p("| portfolios skipped, dead-lettered or left without an analysis | %.0f |", m["skipped"])
	p("| messages handed back (retried) | %.0f |", m["handed-back"])
	p("| tokens per portfolio, as the local server counts them (output = visible answer + reasoning at low effort) | %.0f in, %.0f out |",
		m["prompt-tokens/portfolio"], m["output-tokens/portfolio"])
	p("| **second night on the same data**: wall time (measured; no model wait, all local DynamoDB) | %.1f s |", m["second-wall-s"])
	p("| second night: xAI calls / analyses reused | %.0f / %.0f |", m["second-calls"], m["second-reused"])
	p("")
	p("The measured time exceeds the ideal by the local DynamoDB work, which the second night shows on its own (it pays nothing and waits for no model). " +
		"Deployed, DynamoDB answers in milliseconds and serves the invocations in parallel. Raise `analysisConcurrency` (CDK context) for more portfolios or slower answers, " +
		"within xAI's rate limits (docs/decisions/0003-analysis-fan-out.md, docs/decisions/0005-analysis-in-two-levels.md).")
	p("")
}

// renderPrompts writes the sizes of the two levels' requests.
func renderPrompts(p func(string, ...any), r report) {
	p("### Analysis request size")
	p("")
	managerCap := 0
	if len(r.Prompts) > 0 {
		managerCap = r.Prompts[0].ManagerCap
	}
	p("The prompt builders' requests for a portfolio of N positions with every figure present, none of whose tickers is scored yet: the ticker analyst's calls "+
		"(`analysis.NewTickerCall`, batches of at most %d tickers, each ticker's data written from `indicators.Fields`) and the portfolio manager's call "+
		"(`analysis.NewManagerInput`: weights, P&L and verdicts, no name) — system and user messages plus the response schema sent in `response_format`. "+
		"A ticker already scored that night costs no call: in a night of many portfolios most of them are. Input tokens are estimated as bytes ÷ 4; the API reports the exact count "+
		"(`usage.prompt_tokens`), which the ledger keeps with each paid answer. The completion cap is each call's (250 tokens a ticker, %d for the overview, within `"+
		deploy.EnvXAIMaxCompletionTokens+"`); it bounds the visible answer, not a reasoning model's reasoning. At most %d positions.",
		analysis.TickerBatchSize, managerCap, analysis.MaxPositions)
	p("")
	p("| positions | ticker calls | their bytes | ≈ input tokens | of which the system messages (cacheable) | completion caps | manager's bytes | ≈ input tokens | of which the system message | cap |")
	p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, ps := range r.Prompts {
		p("| %d | %d | %d B | %d | %d | %d | %d B | %d | %d | %d |", ps.Positions, ps.TickerCalls, ps.TickerBytes, tokens(ps.TickerBytes),
			ps.TickerCalls*tokens(ps.TickerSystemSize), ps.TickerCap, ps.ManagerBytes, tokens(ps.ManagerBytes), tokens(ps.ManagerSystemSize), ps.ManagerCap)
	}
	p("")
}

// spliceAnalysis replaces the analysis sections of doc with analysis.
func spliceAnalysis(doc, analysis string) (string, error) {
	i := strings.Index(doc, analysisHeading)
	j := strings.Index(doc, coldHeading)
	if i < 0 || j < i {
		return "", fmt.Errorf("the report has no %q section before %q: regenerate it whole", strings.TrimSpace(analysisHeading), strings.TrimSpace(coldHeading))
	}
	return doc[:i] + analysis + doc[j:], nil
}
