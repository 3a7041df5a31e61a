package analyzer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
)

// managed is who wrote which part of a portfolio's overview.
type managed struct {
	// model is the model the provider reported, or analysis.RulesName
	// when no part came from it.
	model     string
	fallbacks []string
	// outage: a part fell back for want of an answer (worth another try).
	outage bool
}

// overview is the portfolio manager's judgement of the portfolio: the
// rules' when configured (or without a model), else the model's — one call
// under a claim of the manager's input (analysis.ClaimOverview: no name, so
// portfolios whose inputs are identical share one paid answer), its answer
// kept the moment it is paid; each part validated on its own, the faulty
// parts alone asked for again once, and a part still faulty derived from
// the verdicts by the rules. Nothing of it contradicts the verdicts
// (analysis.Compose fits the top actions). generation is a forced run's id
// ("" otherwise). The error is the claim's: another run holding the same
// input past this run's time (ErrBusy), or the ledger failing.
func (s *Service) overview(ctx context.Context, in analysis.Input, verdicts []analysis.TickerScore, mi analysis.ManagerInput, generation string, sp *spend) (analysis.Overview, managed, error) {
	rules := analysis.RulesOverview(in, verdicts)
	if s.manager() == deploy.ManagerRules {
		return rules, managed{model: analysis.RulesName}, nil
	}
	key := analysis.KeyOf("overview", analysis.PromptVersion, analysis.ManagerTemplateSHA256(), s.o.LLM.Model(), mi.Hash, generation)
	h, won, err := s.claim(ctx, analysis.Claim{Key: key, Kind: analysis.ClaimOverview, DataAsOf: in.DataAsOf()})
	if err != nil {
		return rules, managed{}, err
	}
	if !won {
		// Done by a run of the same input: its answers are read, not paid.
		h.readOnly = true
	}
	ov, m := s.judge(ctx, h, in, mi, rules, sp)
	switch {
	case !won:
	case m.outage:
		s.release(ctx, h)
	default:
		s.complete(ctx, h)
	}
	return ov, m, nil
}

// judge is the model's overview under the claim h, from rules for what it
// cannot give.
func (s *Service) judge(ctx context.Context, h *held, in analysis.Input, mi analysis.ManagerInput, rules analysis.Overview, sp *spend) (analysis.Overview, managed) {
	var m managed
	ov := rules
	comp, err := s.pay(ctx, h, mi.Request(analysis.OverviewParts, nil, 1), sp)
	truncated, f := classify(err)
	faulty := analysis.OverviewParts
	var problems []string
	var valid []string
	if f == nil {
		a := analysis.ParseOverview(mi, analysis.OverviewParts, []byte(comp.Content))
		ov.Merge(a.Overview, a.Valid)
		valid, faulty, problems = a.Valid, a.Faulty, a.Problems
		if truncated {
			problems = append([]string{truncatedProblem}, problems...)
		}
	}
	if f == nil && len(faulty) > 0 {
		s.o.Logger.WarnContext(ctx, "overview partly rejected: asking again for the faulty parts only", "portfolio", in.Portfolio,
			"faulty", strings.Join(faulty, ","), "first", firstOf(problems))
		factor := 1
		if truncated {
			factor = 2
		}
		comp2, err := s.pay(ctx, h, mi.Request(faulty, problems, factor), sp)
		truncated2, f2 := classify(err)
		if f2 == nil {
			a := analysis.ParseOverview(mi, faulty, []byte(comp2.Content))
			ov.Merge(a.Overview, a.Valid)
			valid = append(valid, a.Valid...)
			if len(a.Faulty) > 0 {
				f = afterRepair(a.Problems, truncated2)
			}
		} else {
			f = f2
		}
	}
	if len(valid) > 0 {
		m.model = firstNonEmpty(sp.model, s.o.LLM.Model())
	} else {
		m.model = analysis.RulesName
	}
	if f != nil {
		var fromRules []string
		for _, p := range analysis.OverviewParts {
			if !slices.Contains(valid, p) {
				fromRules = append(fromRules, p)
			}
		}
		m.fallbacks = []string{capText(fmt.Sprintf("portfolio overview (%s) from the rules: %s", strings.Join(fromRules, ", "), f.reason), 1000)}
		m.outage = !f.final
	}
	return ov, m
}
