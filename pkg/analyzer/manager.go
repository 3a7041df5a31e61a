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
// under the portfolio's claim, its answer kept the moment it is paid; each
// part validated on its own, the faulty parts alone asked for again once,
// and a part still faulty derived from the verdicts by the rules. Nothing
// of it contradicts the verdicts (analysis.Compose fits the top actions).
func (s *Service) overview(ctx context.Context, h *held, in analysis.Input, verdicts []analysis.TickerScore, mi analysis.ManagerInput, sp *spend) (analysis.Overview, managed) {
	rules := analysis.RulesOverview(in, verdicts)
	if s.manager() == deploy.ManagerRules {
		return rules, managed{model: analysis.RulesName}
	}
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
