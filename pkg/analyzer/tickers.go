package analyzer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
)

// The ticker level: each ticker a portfolio holds is scored once per data
// day, model and prompt — by the batch that first planned it (the fan-out's,
// or a portfolio's own) — and every portfolio reads that one score from the
// ledger. A batch is a claim: two runs needing the same batch pay once, the
// second waits for the first.

// candidate is a ticker that needs a score: its data and its key.
type candidate struct {
	symbol, asOf string
	data         []byte
	key          string
}

// tickerLevel is what the ticker level gave one portfolio beyond its
// verdicts: why some came from the rules, and whether that was an outage
// (no answer at all: worth another try by a later run).
type tickerLevel struct {
	fallbacks []string
	outage    bool
	// model is the model the provider reported for the scores.
	model string
}

// candidateOf is a position's candidate for a score, generation the forced
// run's id ("" otherwise).
func (s *Service) candidateOf(p analysis.Position, generation string) (candidate, error) {
	data, err := analysis.EncodeTicker(p.Symbol, *p.Market)
	if err != nil {
		return candidate{}, err
	}
	k := analysis.TickerKey{Symbol: p.Symbol, AsOf: p.Market.AsOf, Model: s.o.LLM.Model(), Data: data, Generation: generation}
	return candidate{symbol: p.Symbol, asOf: p.Market.AsOf, data: data, key: k.String()}, nil
}

// verdicts gives one verdict per position of in, in order, before the
// data-quality rules (Finalize): the stored score of each ticker with data,
// scoring the ones not stored yet (with the batches that plan them, or a
// batch of this portfolio's own); the rules analyst's for a ticker without
// data, and for every ticker when there is no model. sp counts what this
// run paid for it.
func (s *Service) verdicts(ctx context.Context, in analysis.Input, generation string, sp *spend) ([]analysis.TickerScore, tickerLevel, error) {
	out := make([]analysis.TickerScore, len(in.Positions))
	var tl tickerLevel
	if s.o.LLM == nil {
		for i, p := range in.Positions {
			out[i] = analysis.RulesTicker(p)
		}
		tl.fallbacks = []string{s.o.NoLLMReason}
		return out, tl, nil
	}
	cands := map[int]candidate{}
	var keys []string
	for i, p := range in.Positions {
		if p.Market == nil {
			out[i] = analysis.RulesTicker(p) // no data: neutral, whoever answers
			continue
		}
		c, err := s.candidateOf(p, generation)
		if err != nil {
			return nil, tl, fmt.Errorf("ticker data of %s: %w", p.Symbol, err)
		}
		cands[i] = c
		keys = append(keys, c.key)
	}
	if len(keys) == 0 {
		return out, tl, nil
	}
	entries, err := s.o.Ledger.Scores(ctx, keys)
	if err != nil {
		return nil, tl, fmt.Errorf("read ticker scores: %w", err)
	}
	need := map[string][]string{} // batch → keys this portfolio needs from it
	var fresh []candidate
	reused := 0
	for _, i := range slices.Sorted(mapKeys(cands)) {
		c := cands[i]
		switch e, ok := entries[c.key]; {
		case ok && e.State == analysis.StateDone:
			reused++
		case ok:
			need[e.Batch] = append(need[e.Batch], c.key)
		default:
			fresh = append(fresh, c)
		}
	}
	s.o.Metrics.Add(deploy.TickerScoresReused, float64(reused))
	// The tickers no batch plans yet: batches of this portfolio's own.
	mine, err := s.plan(ctx, fresh, s.owner(ctx), false)
	if err != nil {
		return nil, tl, err
	}
	for b, ks := range mine.others {
		need[b] = append(need[b], ks...)
	}
	var (
		mu      sync.Mutex
		reasons = map[string]failure{}
	)
	batches := slices.Sorted(mapKeys(need))
	err = parallel(ctx, len(mine.held)+len(batches), s.o.BatchParallel, func(ctx context.Context, i int) error {
		var f *failure
		var err error
		if i < len(mine.held) {
			f, err = s.runBatch(ctx, mine.held[i], nil, sp)
		} else {
			f, err = s.settleBatch(ctx, batches[i-len(mine.held)], need[batches[i-len(mine.held)]], sp)
		}
		if f != nil {
			mu.Lock()
			reasons[f.reason] = *f
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		return nil, tl, err
	}
	if entries, err = s.o.Ledger.Scores(ctx, keys); err != nil {
		return nil, tl, fmt.Errorf("read ticker scores: %w", err)
	}
	var unscored []string
	for _, i := range slices.Sorted(mapKeys(cands)) {
		c := cands[i]
		e, ok := entries[c.key]
		if ok && e.State == analysis.StateDone {
			out[i] = *e.Verdict
			if e.Verdict.Source == analysis.SourceRules {
				tl.fallbacks = append(tl.fallbacks, fmt.Sprintf("%s scored by the rules analyst: %s", c.symbol, e.Reason))
			} else if e.Model != "" {
				tl.model = e.Model
			}
			continue
		}
		// No score: the model gave none this time (an outage): the rules
		// analyst's, for this portfolio only; a later run asks again.
		out[i] = analysis.RulesTicker(in.Positions[i])
		unscored = append(unscored, c.symbol)
	}
	if len(unscored) > 0 {
		tl.outage = true
		var why []string
		for r := range reasons {
			why = append(why, r)
		}
		slices.Sort(why)
		if len(why) == 0 {
			why = []string{"their batch gave no score"}
		}
		tl.fallbacks = append(tl.fallbacks, capText(fmt.Sprintf("%s scored by the rules analyst (no model score yet): %s",
			strings.Join(unscored, ", "), strings.Join(why, "; ")), 1000))
	}
	return out, tl, nil
}

func mapKeys[K comparable, V any](m map[K]V) func(yield func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// planned is what plan did: the batches this run holds (a portfolio's own,
// to run now), the others that plan some of the candidates (by batch, the
// candidates' keys), and the batches planned for the queue (the fan-out's).
type planned struct {
	held   []*held
	others map[string][]string
	queued []string
}

// plan puts candidates without a score entry into batches of at most
// analysis.TickerBatchSize (in symbol order): each batch a claim, keyed by
// its members, then a pending score entry per member naming it. A member
// another batch planned meanwhile stays that batch's (others). forQueue
// plans for the fan-out: the claims are left pending with an expired lease,
// for the batch messages (or the first portfolio that needs one) to take;
// otherwise this run holds them.
func (s *Service) plan(ctx context.Context, cands []candidate, owner string, forQueue bool) (planned, error) {
	p := planned{others: map[string][]string{}}
	slices.SortFunc(cands, func(a, b candidate) int { return strings.Compare(a.symbol, b.symbol) })
	for start := 0; start < len(cands); start += analysis.TickerBatchSize {
		chunk := cands[start:min(start+analysis.TickerBatchSize, len(cands))]
		members := make([]string, len(chunk))
		for i, c := range chunk {
			members[i] = c.key
		}
		key := analysis.KeyOf(append([]string{"ticker-batch"}, members...)...)
		c := analysis.Claim{Key: key, Kind: analysis.ClaimBatch, DataAsOf: chunk[0].asOf, Members: members}
		var h *held
		if forQueue {
			now := s.o.Now()
			c.Owner, c.CreatedAt, c.ExpiresAt = owner, now, now.Add(analysis.LedgerTTL)
			if _, _, err := s.o.Ledger.Claim(ctx, c); err != nil {
				return p, fmt.Errorf("plan a ticker batch: %w", err)
			}
		} else {
			got, won, err := s.o.Ledger.Claim(ctx, s.leased(ctx, c))
			if err != nil {
				return p, fmt.Errorf("plan a ticker batch: %w", err)
			}
			if won {
				h = &held{c: got}
			}
		}
		assigned := make([]bool, len(chunk))
		if err := parallel(ctx, len(chunk), s.o.Parallel, func(ctx context.Context, i int) error {
			now := s.o.Now()
			won, err := s.o.Ledger.Assign(ctx, analysis.ScoreEntry{Key: chunk[i].key, Ticker: chunk[i].symbol, DataAsOf: chunk[i].asOf, Batch: key,
				Data: chunk[i].data, CreatedAt: now, ExpiresAt: now.Add(analysis.LedgerTTL)})
			assigned[i] = won
			return err
		}); err != nil {
			return p, fmt.Errorf("plan ticker scores: %w", err)
		}
		var lost []string
		here := 0 // members left to score that name this batch
		for i, won := range assigned {
			if won {
				here++
			} else {
				lost = append(lost, chunk[i].key)
			}
		}
		if len(lost) > 0 {
			// Planned by another batch meanwhile (or the same batch
			// before): it is that batch's.
			entries, err := s.o.Ledger.Scores(ctx, lost)
			if err != nil {
				return p, fmt.Errorf("read ticker scores: %w", err)
			}
			for _, k := range lost {
				e, ok := entries[k]
				switch {
				case !ok || e.State == analysis.StateDone:
				case e.Batch == key:
					here++
				default:
					p.others[e.Batch] = append(p.others[e.Batch], k)
				}
			}
		}
		switch {
		case forQueue:
			if here > 0 {
				p.queued = append(p.queued, key)
			}
		case h != nil:
			p.held = append(p.held, h)
		default:
			// The same batch is another run's: wait for it.
			p.others[key] = append(p.others[key], members...)
		}
	}
	return p, nil
}

// settleBatch makes sure the batch of key has run: it claims it — waiting
// while another run holds it — and runs it unless it is done. need are keys
// the caller knows to be its members (the claim may predate them, or be
// missing).
func (s *Service) settleBatch(ctx context.Context, key string, need []string, sp *spend) (*failure, error) {
	h, won, err := s.claim(ctx, analysis.Claim{Key: key, Kind: analysis.ClaimBatch, Members: need})
	if err != nil || !won {
		return nil, err
	}
	return s.runBatch(ctx, h, need, sp)
}

// batchJob is a batch message's job: the batch, run unless done.
func (s *Service) batchJob(ctx context.Context, key string) error {
	var sp spend
	f, err := s.settleBatch(ctx, key, nil, &sp)
	switch {
	case err != nil:
		return err
	case f != nil && !f.final:
		// No score this time (an outage): the portfolios fall back for it
		// and a later run asks again; the message is done.
		s.o.Logger.WarnContext(ctx, "ticker batch not scored: released for a later run", "batch", key[:12], "reason", f.reason)
	default:
		s.o.Logger.InfoContext(ctx, "ticker batch done", "batch", key[:12], "calls", sp.calls)
	}
	return nil
}

// member is one ticker of a batch being run.
type member struct {
	entry analysis.ScoreEntry
	pos   analysis.Position
}

// runBatch scores the members of the batch h holds: its pending score
// entries that name it (their data validated again, analysis.DecodeTicker),
// in one call — or none, when its answer is kept in the ledger already —
// and one repair asking again only for the tickers without a valid entry.
// A valid score is stored at once, whatever else is wrong. A ticker the
// model answered but never validly gets the rules analyst's score (final:
// the same request would pay for the same); one the model gave no answer
// for stays pending, the batch is released, and a later run asks again.
func (s *Service) runBatch(ctx context.Context, h *held, need []string, sp *spend) (*failure, error) {
	keys := slices.Clone(h.c.Members)
	for _, k := range need {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	entries, err := s.o.Ledger.Scores(ctx, keys)
	if err != nil {
		s.release(ctx, h)
		return nil, fmt.Errorf("read the scores of a ticker batch: %w", err)
	}
	var members []member
	for _, k := range keys {
		e, ok := entries[k]
		if !ok || e.State != analysis.StatePending || e.Batch != h.c.Key {
			continue
		}
		sym, snap, err := analysis.DecodeTicker(e.Data)
		if err != nil || sym != e.Ticker {
			s.o.Logger.ErrorContext(ctx, "ticker data in the ledger not valid: not sent to the model", "ticker", e.Ticker, "error", err)
			continue
		}
		members = append(members, member{entry: e, pos: analysis.Position{Symbol: sym, Market: &snap, Status: analysis.DataOK}})
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.pos.Symbol, b.pos.Symbol) })
	if len(members) == 0 {
		s.complete(ctx, h)
		return nil, nil
	}
	bySym := map[string]member{}
	entryOf := func(ms []member) []analysis.TickerEntry {
		out := make([]analysis.TickerEntry, len(ms))
		for i, m := range ms {
			out[i] = analysis.TickerEntry{Symbol: m.pos.Symbol, Data: m.entry.Data}
		}
		return out
	}
	for _, m := range members {
		bySym[m.pos.Symbol] = m
	}
	scores := map[string]analysis.TickerScore{}
	var model string
	call := analysis.NewTickerCall(entryOf(members), nil, 1)
	comp, err := s.pay(ctx, h, call.Request, sp)
	truncated, f := classify(err)
	faulty := call.Symbols
	var problems []string
	if f == nil {
		model = comp.Model
		a := analysis.ParseTickers(call, []byte(comp.Content))
		for sym, v := range a.Scores {
			scores[sym] = v
		}
		faulty, problems = a.Faulty, a.Problems
		if truncated {
			problems = append([]string{truncatedProblem}, problems...)
		}
	}
	if f == nil && len(faulty) > 0 {
		var again []member
		for _, sym := range faulty {
			again = append(again, bySym[sym])
		}
		factor := 1
		if truncated {
			factor = 2
		}
		repair := analysis.NewTickerCall(entryOf(again), problems, factor)
		if truncated && len(faulty) == len(call.Symbols) && min(s.o.MaxCompletionTokens, repair.Request.MaxCompletionTokens) <= min(s.o.MaxCompletionTokens, call.Request.MaxCompletionTokens) {
			f = &failure{reason: fmt.Sprintf("the answer was cut off at the completion cap, the ceiling (%s): not repaired", deploy.EnvXAIMaxCompletionTokens), final: true}
		} else {
			s.o.Logger.WarnContext(ctx, "ticker answer partly rejected: asking again for the faulty tickers only", "batch", h.c.Key[:12],
				"valid", len(scores), "faulty", len(faulty), "first", firstOf(problems))
			comp2, err := s.pay(ctx, h, repair.Request, sp)
			truncated2, f2 := classify(err)
			if f2 == nil {
				if comp2.Model != "" {
					model = comp2.Model
				}
				a := analysis.ParseTickers(repair, []byte(comp2.Content))
				for sym, v := range a.Scores {
					scores[sym] = v
				}
				if len(a.Faulty) > 0 {
					f = afterRepair(a.Problems, truncated2)
				}
			} else {
				f = f2
			}
		}
	}
	// Store every score the model gave validly; the rest per the failure.
	var settle []analysis.ScoreEntry
	pending := 0
	for _, m := range members {
		e := m.entry
		if v, ok := scores[m.pos.Symbol]; ok {
			v.Source = analysis.SourceModel
			e.Verdict, e.Model = &v, model
		} else if f != nil && f.final {
			v := analysis.RulesTicker(m.pos)
			e.Verdict, e.Model, e.Reason = &v, analysis.RulesName, f.reason
		} else {
			pending++
			continue
		}
		settle = append(settle, e)
	}
	if err := parallel(ctx, len(settle), s.o.Parallel, func(ctx context.Context, i int) error {
		return s.o.Ledger.Settle(ctx, settle[i])
	}); err != nil {
		s.release(ctx, h)
		return f, fmt.Errorf("store ticker scores: %w", err)
	}
	s.o.Metrics.Add(deploy.TickerScoresStored, float64(len(settle)))
	if pending > 0 {
		s.release(ctx, h)
	} else {
		s.complete(ctx, h)
	}
	return f, nil
}

func firstOf(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}
