package analyzer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/retry"
)

// verdict is what the model (or the rules analyst) produced, with the audit.
type verdict struct {
	result      analysis.Result
	model       string
	fingerprint string
	usage       analysis.Usage
	attempts    int
	// calls counts the model calls answered (what was paid for).
	calls   int
	latency time.Duration
	// accepted counts the calls whose answer was used.
	accepted int
	// fallbacks say which parts the rules analyst answered and why; none
	// when the model's answers were all accepted.
	fallbacks []string
	// outage is set when a part fell back because the API failed
	// transiently (retries or time exhausted): a later run may try again.
	outage bool
	mu     sync.Mutex
}

func (v *verdict) reason() string {
	return capText(strings.Join(v.fallbacks, "; "), 1000)
}

const truncatedProblem = "the answer was cut off at the completion token limit (finish_reason \"length\"): keep the rationales and the analysis shorter"

// consult asks the model for the analysis — one call, or one per batch and
// then the portfolio call — each with at most one repair, and answers every
// part the model could not with the rules analyst: when there is no model,
// the API fails, the answer was filtered, or it does not validate after the
// repair. The result is finalized (analysis.Finalize).
func (s *Service) consult(ctx context.Context, p analysis.Prompt, in analysis.Input) *verdict {
	v := &verdict{}
	rules := sync.OnceValue(func() analysis.Result { return analysis.Rules(in) })
	if s.o.LLM == nil {
		v.result, v.model = rules(), analysis.RulesName
		v.fallbacks = []string{s.o.NoLLMReason}
		return v
	}
	defer func() {
		if v.accepted == 0 {
			v.model = analysis.RulesName
		}
	}()
	if !p.Batched() {
		res, ok := s.ask(ctx, p.Calls[0], v, false)
		if !ok {
			v.result = rules()
			return v
		}
		v.result = analysis.Finalize(in, fromModel(res))
		return v
	}

	// Batches in parallel, at most BatchParallel in flight.
	parts := make([][]analysis.TickerScore, len(p.Calls))
	sem := make(chan struct{}, s.o.BatchParallel)
	var wg sync.WaitGroup
	for i, c := range p.Calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if res, ok := s.ask(ctx, c, v, true); ok {
				parts[i] = fromModel(res).Tickers
				return
			}
			for _, t := range rules().Tickers {
				if slices.Contains(c.Symbols, t.Ticker) {
					parts[i] = append(parts[i], t)
				}
			}
		}()
	}
	wg.Wait()
	all := analysis.Result{Tickers: slices.Concat(parts...)}
	all = analysis.Finalize(in, all)
	overview := rules()
	if pc, err := p.PortfolioCall(all.Tickers); err != nil {
		v.fallbacks = append(v.fallbacks, "portfolio overview: "+err.Error())
	} else if res, ok := s.ask(ctx, pc, v, true); ok {
		overview = res
	}
	all.Summary, all.OverallRisk, all.ConcentrationFlags, all.TopActions, all.Analysis =
		overview.Summary, overview.OverallRisk, overview.ConcentrationFlags, overview.TopActions, overview.Analysis
	v.result = analysis.Finalize(in, all)
	return v
}

// fromModel marks a parsed answer's tickers as the model's.
func fromModel(res analysis.Result) analysis.Result {
	res.Tickers = slices.Clone(res.Tickers)
	for i := range res.Tickers {
		res.Tickers[i].Source = analysis.SourceModel
	}
	return res
}

// ask makes one call and at most one repair: for an answer that does not
// validate (the problems listed), or one cut off at its completion cap
// (asked again with the cap doubled, within the ceiling; an answer cut at
// the ceiling itself is not repaired, as the same cap would cut it again).
// An answer withheld for another finish reason (content_filter) is not
// repaired either: the same request would be refused the same way. On
// failure the part's reason is recorded and ok is false. named prefixes the
// reason with the call's part.
func (s *Service) ask(ctx context.Context, c analysis.Call, v *verdict, named bool) (analysis.Result, bool) {
	limit := min(s.o.MaxCompletionTokens, c.MaxCompletionTokens)
	fail := func(reason string, outage bool) (analysis.Result, bool) {
		if named {
			reason = c.Part + ": " + reason
		}
		v.mu.Lock()
		v.fallbacks = append(v.fallbacks, reason)
		v.outage = v.outage || outage
		v.mu.Unlock()
		return analysis.Result{}, false
	}
	call := func(msgs []analysis.Message, limit int) (analysis.Completion, error) {
		resp, err := s.o.LLM.Complete(ctx, analysis.Request{Messages: msgs, SchemaName: c.SchemaName, Schema: c.Schema,
			MaxCompletionTokens: limit, ReasoningEffort: s.o.ReasoningEffort})
		v.mu.Lock()
		defer v.mu.Unlock()
		v.usage = v.usage.Add(resp.Usage)
		v.attempts += resp.Attempts
		v.latency += resp.Latency
		if resp.Model != "" || resp.Usage.TotalTokens > 0 || resp.FinishReason != "" {
			v.calls++
		}
		if resp.Model != "" {
			v.model = resp.Model
		}
		if resp.SystemFingerprint != "" {
			v.fingerprint = resp.SystemFingerprint
		}
		return resp, err
	}
	accept := func(res analysis.Result) (analysis.Result, bool) {
		v.mu.Lock()
		v.accepted++
		v.mu.Unlock()
		return res, true
	}

	resp, err := call(c.Messages, limit)
	var problems []string
	repairLimit := limit
	switch {
	case errors.Is(err, analysis.ErrTruncated):
		repairLimit = min(s.o.MaxCompletionTokens, 2*limit)
		if repairLimit <= limit {
			return fail(fmt.Sprintf("the answer was cut off at the completion cap of %d tokens, the ceiling (%s): not repaired", limit, deploy.EnvXAIMaxCompletionTokens), false)
		}
		problems = []string{truncatedProblem}
	case errors.Is(err, analysis.ErrUnfinished):
		return fail(capText("the model did not answer: "+err.Error()+"; not repaired (the same request would end the same way)", 1000), false)
	case err != nil:
		return fail(apiReason("xAI request failed", err), !retry.IsPermanent(err))
	default:
		res, perr := analysis.ParseCall(c, []byte(resp.Content))
		if perr == nil {
			return accept(res)
		}
		var inv *analysis.InvalidAnswerError
		if !errors.As(perr, &inv) {
			return fail(capText(perr.Error(), 1000), false)
		}
		problems = inv.Problems
	}
	s.o.Logger.WarnContext(ctx, "model answer rejected, asking for a repair", "part", c.Part, "problems", len(problems), "first", problems[0])
	resp2, err := call(analysis.RepairMessages(c, resp.Content, problems), repairLimit)
	switch {
	case errors.Is(err, analysis.ErrTruncated):
		return fail(fmt.Sprintf("the repaired answer was cut off at the completion cap of %d tokens", repairLimit), false)
	case errors.Is(err, analysis.ErrUnfinished):
		return fail(capText("the model did not answer the repair: "+err.Error(), 1000), false)
	case err != nil:
		return fail(apiReason("xAI repair request failed", err), !retry.IsPermanent(err))
	}
	res, perr := analysis.ParseCall(c, []byte(resp2.Content))
	var inv *analysis.InvalidAnswerError
	switch {
	case errors.As(perr, &inv):
		return fail(capText("answer invalid after repair: "+strings.Join(inv.Problems, "; "), 1000), false)
	case perr != nil:
		return fail(capText(perr.Error(), 1000), false)
	}
	return accept(res)
}

func apiReason(prefix string, err error) string {
	kind := "transient, retries exhausted"
	if retry.IsPermanent(err) {
		kind = "permanent"
	}
	return capText(fmt.Sprintf("%s (%s): %v", prefix, kind, err), 1000)
}

func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
