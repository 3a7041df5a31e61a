package analyzer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
)

// one analyzes one portfolio; the Outcome is filled as far as known even on
// error. name is used exactly as given (only checked): it must match the
// shared table's name to be found, and the analysis is stored under it.
// runID keys a forced run's claims and scores (a redelivered forced message
// pays once); "" makes a forced run's its own.
//
// The ticker level first — each ticker's stored score, or its batch run
// now — then the data-quality rules, then the portfolio manager over the
// positions' weights, P&L and those verdicts (the model, or the rules by
// configuration), under a claim of its own: its answer is kept the moment
// it is paid, and the analysis stored.
func (s *Service) one(ctx context.Context, name string, force bool, runID string) (Outcome, error) {
	out := Outcome{Portfolio: name}
	if _, err := analysis.ValidatePortfolioName(name); err != nil {
		return out, err
	}
	fail := func(err error) (Outcome, error) {
		level := slog.LevelError
		if isNothingToAnalyze(err) {
			level = slog.LevelWarn
		}
		s.o.Logger.Log(ctx, level, "analysis failed", "portfolio", name, "error", err)
		return out, err
	}
	now := s.o.Now().UTC().Truncate(time.Millisecond)
	in, err := s.gather(ctx, name, now)
	if err != nil {
		return fail(err)
	}
	generation := ""
	if force {
		if runID == "" {
			runID = randomHex(16)
		}
		generation = runID
	}
	out.DataAsOf = in.DataAsOf()
	var sp spend
	verdicts, tl, err := s.verdicts(ctx, in, generation, &sp)
	out.Calls = sp.calls
	if err != nil {
		return fail(err)
	}
	verdicts = analysis.Finalize(in, verdicts)
	mi, err := analysis.NewManagerInput(in, verdicts)
	if err != nil {
		return fail(fmt.Errorf("the manager's input for %q: %w", name, err))
	}
	requested, manager := s.requested(), s.manager()
	if !force {
		prev, err := s.reusable(ctx, name, out.DataAsOf, requested, mi.Hash)
		if err != nil {
			return fail(err)
		}
		if prev != nil {
			return s.reused(ctx, out, *prev), nil
		}
	}
	parts := []string{"portfolio", name, out.DataAsOf, analysis.PromptVersion, analysis.TemplateSHA256(), requested, manager, mi.Hash}
	if force {
		parts = append(parts, "force", runID)
	}
	h, won, err := s.claim(ctx, analysis.Claim{Key: analysis.KeyOf(parts...), Kind: analysis.ClaimPortfolio, Portfolio: name, DataAsOf: out.DataAsOf})
	if err != nil {
		return fail(err)
	}
	if !won {
		rec, err := s.find(ctx, name, h.c.Analysis)
		if err != nil {
			return fail(err)
		}
		out.Reason = "another run analyzed the same data, prompt and model"
		out.Status, out.Timestamp, out.Model = OutcomeReused, h.c.Analysis, rec.Model
		s.o.Logger.InfoContext(ctx, "analysis reused", "portfolio", name, "timestamp", out.Timestamp, "dataAsOf", out.DataAsOf, "via", "claim")
		return out, nil
	}
	if !force {
		// The claim's previous owner may have stored the analysis and died
		// before marking it done.
		prev, err := s.reusable(ctx, name, out.DataAsOf, requested, mi.Hash)
		if err != nil {
			s.release(ctx, h)
			return fail(err)
		}
		if prev != nil {
			h.c.Analysis, h.c.Status = analysisTime(prev.Timestamp), prev.Status
			s.complete(ctx, h)
			return s.reused(ctx, out, *prev), nil
		}
	}

	var msp spend
	ov, mo, err := s.overview(ctx, in, verdicts, mi, generation, &msp)
	if err != nil {
		s.release(ctx, h)
		return fail(err)
	}
	missing, stale := in.Flagged()
	rec := analysis.Record{
		Portfolio: name, Timestamp: now, DataAsOf: out.DataAsOf, Result: analysis.Compose(in, verdicts, ov),
		Missing: missing, Stale: stale, Excluded: excludedList(in.Excluded), Omitted: in.Omitted,
		PromptVersion: analysis.PromptVersion, PromptSHA256: analysis.TemplateSHA256(), InputHash: mi.Hash,
		RequestedModel: requested, SystemFingerprint: msp.fingerprint, Usage: msp.usage, LatencyMs: msp.latency.Milliseconds(),
		Attempts: msp.attempts, Calls: msp.calls, Manager: mo.model, Status: analysis.StatusOK,
	}
	rec.Analysis = rec.Result.Analysis
	rec.Model = firstNonEmpty(tl.model, mo.model, sp.model, analysis.RulesName)
	if s.o.LLM == nil {
		rec.Model = analysis.RulesName
	}
	if reasons := append(tl.fallbacks, mo.fallbacks...); len(reasons) > 0 {
		rec.Status, rec.Reason = analysis.StatusFallback, capText(strings.Join(reasons, "; "), 1000)
	}
	if err := s.o.Analyses.Put(ctx, rec); err != nil {
		s.release(ctx, h)
		return fail(fmt.Errorf("store analysis of %q: %w", name, err))
	}
	s.o.Metrics.Add(deploy.AnalysesStored, 1)
	// A fallback for want of an answer (an outage) is worth another try by
	// a later run; any other result is final for this key.
	if tl.outage || mo.outage {
		s.release(ctx, h)
	} else {
		h.c.Analysis, h.c.Status = analysisTime(now), rec.Status
		s.complete(ctx, h)
	}
	out.Status, out.Timestamp, out.Model, out.Reason, out.Calls = rec.Status, analysisTime(now), rec.Model, rec.Reason, sp.calls+msp.calls
	attrs := []any{"portfolio", name, "status", rec.Status, "model", rec.Model, "manager", rec.Manager, "requestedModel", requested, "dataAsOf", out.DataAsOf,
		"tickers", len(in.Positions), "missing", len(missing), "stale", len(stale), "excluded", len(in.Excluded), "omitted", in.Omitted,
		"calls", out.Calls, "tickerCalls", sp.calls, "managerCalls", msp.calls, "promptTokens", sp.usage.PromptTokens + msp.usage.PromptTokens,
		"cachedPromptTokens", sp.usage.CachedPromptTokens + msp.usage.CachedPromptTokens,
		"completionTokens", sp.usage.CompletionTokens + msp.usage.CompletionTokens, "reasoningTokens", sp.usage.ReasoningTokens + msp.usage.ReasoningTokens}
	if rec.Reason != "" {
		s.o.Metrics.Add(deploy.AnalysisFallback, 1)
		s.o.Logger.WarnContext(ctx, "analysis stored, partly from the rules analyst", append(attrs, "reason", rec.Reason)...)
	} else {
		s.o.Logger.InfoContext(ctx, "analysis stored", attrs...)
	}
	return out, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// analysisTime is a stored analysis's sort key (analysisdb.TimeFormat).
func analysisTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Service) reused(ctx context.Context, out Outcome, prev analysis.Record) Outcome {
	out.Status, out.Timestamp, out.Model, out.Reason = OutcomeReused, analysisTime(prev.Timestamp), prev.Model, "an analysis of the same data, prompt version and model is stored"
	s.o.Logger.InfoContext(ctx, "analysis reused", "portfolio", out.Portfolio, "timestamp", out.Timestamp, "dataAsOf", out.DataAsOf)
	return out
}

// find reads the stored analysis a done claim names.
func (s *Service) find(ctx context.Context, name, timestamp string) (analysis.Record, error) {
	recs, err := s.o.Analyses.Recent(ctx, name, s.o.RecentLimit)
	if err != nil && !errors.Is(err, analysis.ErrUnreadable) {
		return analysis.Record{}, fmt.Errorf("read the analysis of %q another run stored: %w", name, err)
	}
	for _, r := range recs {
		if analysisTime(r.Timestamp) == timestamp {
			return r, nil
		}
	}
	// Not among the newest: it exists (the claim says so), only its
	// details are not shown.
	return analysis.Record{}, nil
}

func excludedList(ex []analysis.Excluded) []string {
	out := make([]string, len(ex))
	for i, e := range ex {
		out[i] = e.Reason
	}
	return out
}

// reusable finds a stored analysis of the same portfolio, data date, prompt
// version, requested model and manager input (the positions' weights, P&L
// and verdicts) by the manager configured. Only a validated one (status ok)
// is reused — a fallback caused by an outage gets another try — except when
// the rules analyst was requested, whose result is the same every time.
func (s *Service) reusable(ctx context.Context, name, dataAsOf, requested, inputHash string) (*analysis.Record, error) {
	recs, err := s.o.Analyses.Recent(ctx, name, s.o.RecentLimit)
	switch {
	case errors.Is(err, analysis.ErrUnreadable):
		// A record that cannot be read cannot be reused either; it must
		// not block every later analysis of the portfolio.
		s.o.Logger.WarnContext(ctx, "stored analysis not readable, ignored for reuse", "portfolio", name, "error", err)
	case err != nil:
		return nil, fmt.Errorf("look for a stored analysis of %q: %w", name, err)
	}
	rulesManager := s.manager() == deploy.ManagerRules
	for i, r := range recs {
		if r.DataAsOf == dataAsOf && r.PromptVersion == analysis.PromptVersion && r.RequestedModel == requested && r.InputHash == inputHash &&
			(r.Manager == analysis.RulesName) == rulesManager && (r.Status == analysis.StatusOK || requested == analysis.RulesName) {
			return &recs[i], nil
		}
	}
	return nil, nil
}
