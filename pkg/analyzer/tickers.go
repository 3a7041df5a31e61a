package analyzer

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/retry"
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
	// from is the batch of the pending entry this ticker is planned anew
	// from ("" for a ticker without an entry).
	from string
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

// keyer keys the tickers of one run: the model, a forced run's id (""
// otherwise) and the ticker analyst's template hash, computed once.
type keyer struct{ model, generation, template string }

func (s *Service) keyer(generation string) keyer {
	return keyer{model: s.o.LLM.Model(), generation: generation, template: analysis.TickerTemplateSHA256()}
}

// candidate is a position's candidate for a score.
func (k keyer) candidate(p analysis.Position) (candidate, error) {
	data, err := analysis.EncodeTicker(p.Symbol, *p.Market)
	if err != nil {
		return candidate{}, err
	}
	key := analysis.TickerKey{Symbol: p.Symbol, AsOf: p.Market.AsOf, Model: k.model, Data: data, Generation: k.generation, Template: k.template}
	return candidate{symbol: p.Symbol, asOf: p.Market.AsOf, data: data, key: key.String()}, nil
}

// verdicts gives one verdict per position of in, in order, before the
// data-quality rules (Finalize): the stored score of each ticker with data,
// scoring the ones not stored yet (scoreTickers); the rules analyst's for a
// ticker without data, and for every ticker when there is no model. sp
// counts what this run paid for it.
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
	kr := s.keyer(generation)
	cands := map[int]candidate{}
	var list []candidate
	for i, p := range in.Positions {
		if p.Market == nil {
			out[i] = analysis.RulesTicker(p) // no data: neutral, whoever answers
			continue
		}
		c, err := kr.candidate(p)
		if err != nil {
			return nil, tl, fmt.Errorf("ticker data of %s: %w", p.Symbol, err)
		}
		cands[i] = c
		list = append(list, c)
	}
	if len(list) == 0 {
		return out, tl, nil
	}
	entries, reasons, err := s.scoreTickers(ctx, list, sp)
	if err != nil {
		return nil, tl, err
	}
	var unscored []string
	for _, i := range slices.Sorted(maps.Keys(cands)) {
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
		why := slices.Sorted(maps.Keys(reasons))
		if len(why) == 0 {
			why = []string{"their batch left them unscored (its data not valid in the ledger)"}
		}
		tl.fallbacks = append(tl.fallbacks, capText(fmt.Sprintf("%s scored by the rules analyst (no model score yet): %s",
			strings.Join(unscored, ", "), strings.Join(why, "; ")), 1000))
	}
	return out, tl, nil
}

// scoreTickers sees every candidate scored, as far as this run can. It
// reads their score entries and, until each is done or left for a later
// run, it
//
//   - plans the tickers no batch holds into batches of its own — and plans
//     anew, once, an entry stranded pending in a batch that is done, or
//     whose data is not the ticker's (its batch can never score it);
//   - runs the batches it holds or can take (planned or released, their
//     lease run out), each at most once, BatchParallel at a time, before
//     anything else;
//   - and only then, holding no batch, waits for the batches other runs
//     hold: waiting never keeps a batch from running, so two portfolios
//     each holding a batch the other needs cannot stall each other.
//
// It returns the entries as last read and, by reason, why the batches it
// ran left tickers without a score; ErrBusy (transient) when it would wait
// past its invocation's time.
func (s *Service) scoreTickers(ctx context.Context, cands []candidate, sp *spend) (map[string]analysis.ScoreEntry, map[string]failure, error) {
	byKey := make(map[string]candidate, len(cands))
	keys := make([]string, 0, len(cands))
	for _, c := range cands {
		if _, ok := byKey[c.key]; !ok {
			keys = append(keys, c.key)
		}
		byKey[c.key] = c
	}
	owner := s.owner(ctx)
	var (
		mu        sync.Mutex
		reasons   = map[string]failure{}
		ran       = map[string]bool{} // batches this run ran
		planned   = map[string]bool{} // keys this run planned
		replanned = map[string]bool{} // keys this run planned anew
		first     = true
		waiting   = false
	)
	for {
		entries, err := s.o.Ledger.Scores(ctx, keys)
		if err != nil {
			return nil, nil, fmt.Errorf("read ticker scores: %w", err)
		}
		var toPlan []candidate
		others := map[string][]string{} // batch → keys left pending in it
		done := 0
		for _, k := range keys {
			e, ok := entries[k]
			c := byKey[k]
			switch {
			case ok && e.State == analysis.StateDone:
				done++
			case ok && ran[e.Batch], !ok && planned[k]:
				// Its batch ran here (an outage left it), or this run
				// planned it and lost it: for a later run.
			case !ok:
				toPlan = append(toPlan, c)
			case !bytes.Equal(e.Data, c.data) && !replanned[k]:
				c.from = e.Batch
				toPlan = append(toPlan, c)
			default:
				others[e.Batch] = append(others[e.Batch], k)
			}
		}
		if first {
			s.o.Metrics.Add(deploy.TickerScoresReused, float64(done))
			first = false
		}
		if len(toPlan) == 0 && len(others) == 0 {
			return entries, reasons, nil
		}
		var run []*held
		var stranded []candidate
		var lease time.Time // the earliest lease among the batches others hold
		for _, b := range slices.Sorted(maps.Keys(others)) {
			got, won, err := s.o.Ledger.Claim(ctx, s.leased(ctx, analysis.Claim{Key: b, Kind: analysis.ClaimBatch, Members: others[b]}))
			switch {
			case err != nil:
				return nil, nil, fmt.Errorf("claim ticker batch %s: %w", b[:min(12, len(b))], err)
			case won:
				run = append(run, &held{c: got, need: others[b]})
			case got.State == analysis.StateDone:
				// Done without these entries: stranded; planned anew.
				for _, k := range others[b] {
					if !replanned[k] {
						c := byKey[k]
						c.from = b
						stranded = append(stranded, c)
					}
				}
			case lease.IsZero() || got.LeaseUntil.Before(lease):
				lease = got.LeaseUntil
			}
		}
		if toPlan = append(toPlan, stranded...); len(toPlan) > 0 {
			p, err := s.plan(ctx, toPlan, owner, false)
			if err != nil {
				return nil, nil, err
			}
			for _, c := range toPlan {
				planned[c.key] = true
				if c.from != "" {
					replanned[c.key] = true
					s.o.Logger.WarnContext(ctx, "ticker score stranded in a batch that cannot score it: planned anew", "ticker", c.symbol, "batch", c.from[:min(12, len(c.from))])
				}
			}
			run = append(p.held, run...)
		}
		if len(run) > 0 {
			err := parallel(ctx, len(run), s.o.BatchParallel, func(ctx context.Context, i int) error {
				f, err := s.runBatch(ctx, run[i], sp)
				mu.Lock()
				defer mu.Unlock()
				ran[run[i].c.Key] = true
				if f != nil {
					reasons[f.reason] = *f
				}
				return err
			})
			if err != nil {
				return nil, nil, err
			}
			waiting = false
			continue
		}
		if toPlan != nil {
			continue // planned, lost to other runs' batches: look again
		}
		// Only batches other runs hold are left: wait for them, every
		// WaitPoll or just after the earliest lease runs out.
		now := s.o.Now()
		wait := s.o.WaitPoll
		if !lease.IsZero() {
			if until := lease.Sub(now); until < wait {
				wait = max(until, 0) + 10*time.Millisecond
			}
		}
		if dl, ok := ctx.Deadline(); ok && dl.Sub(now.Add(wait)) < s.o.MinWork {
			return nil, nil, retry.Transient(fmt.Errorf("%d ticker batches: %w (the earliest lease until %s)", len(others), ErrBusy,
				lease.UTC().Format(time.RFC3339)), 0)
		}
		if !waiting {
			s.o.Logger.InfoContext(ctx, "other runs hold the ticker batches this portfolio needs: waiting", "batches", len(others),
				"leaseUntil", lease.UTC().Format(time.RFC3339))
			waiting = true
		}
		if err := s.o.Sleep(ctx, wait); err != nil {
			return nil, nil, fmt.Errorf("wait for ticker batches: %w", err)
		}
	}
}

// planned is what plan did: the batches this run holds (a portfolio's own,
// to run now) and the batches planned for the queue (the fan-out's).
type planned struct {
	held   []*held
	queued []string
}

// batchKey is the key of a batch of members (their score-entry keys); a
// batch that plans tickers anew names the batches they leave, so that it
// is never the batch they leave.
func batchKey(chunk []candidate) string {
	parts := []string{"ticker-batch"}
	for _, c := range chunk {
		parts = append(parts, c.key)
	}
	for _, c := range chunk {
		if c.from != "" {
			parts = append(parts, "from", c.key, c.from)
		}
	}
	return analysis.KeyOf(parts...)
}

// plan puts candidates into batches of at most analysis.TickerBatchSize (in
// symbol order): each batch a claim, keyed by its members, written first —
// held by this run, or, for the fan-out (forQueue), planned for its queue
// message with PlannedLease, within which no other run takes it — then a
// pending score entry per member naming it: a new entry where there is
// none (one another batch planned meanwhile stays that batch's), or, for a
// candidate planned anew, over its stranded entry.
func (s *Service) plan(ctx context.Context, cands []candidate, owner string, forQueue bool) (planned, error) {
	var p planned
	slices.SortFunc(cands, func(a, b candidate) int { return strings.Compare(a.symbol, b.symbol) })
	for start := 0; start < len(cands); start += analysis.TickerBatchSize {
		chunk := cands[start:min(start+analysis.TickerBatchSize, len(cands))]
		members := make([]string, len(chunk))
		for i, c := range chunk {
			members[i] = c.key
		}
		key := batchKey(chunk)
		c := analysis.Claim{Key: key, Kind: analysis.ClaimBatch, DataAsOf: chunk[0].asOf, Members: members}
		var h *held
		if forQueue {
			now := s.o.Now()
			c.Owner, c.State, c.LeaseUntil, c.CreatedAt, c.ExpiresAt = owner, analysis.StatePlanned, now.Add(s.o.PlannedLease), now, now.Add(analysis.LedgerTTL)
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
			e := analysis.ScoreEntry{Key: chunk[i].key, Ticker: chunk[i].symbol, DataAsOf: chunk[i].asOf, Batch: key,
				Data: chunk[i].data, CreatedAt: now, ExpiresAt: now.Add(analysis.LedgerTTL)}
			var err error
			if chunk[i].from != "" {
				assigned[i], err = s.o.Ledger.Replan(ctx, e, chunk[i].from)
			} else {
				assigned[i], err = s.o.Ledger.Assign(ctx, e)
			}
			return err
		}); err != nil {
			return p, fmt.Errorf("plan ticker scores: %w", err)
		}
		switch {
		case forQueue:
			here, err := s.namingBatch(ctx, key, chunk, assigned)
			if err != nil {
				return p, err
			}
			if here > 0 {
				p.queued = append(p.queued, key)
			}
		case h != nil:
			p.held = append(p.held, h)
		}
	}
	return p, nil
}

// namingBatch counts the members of a batch whose entry is pending in it:
// those just assigned, and those a plan of the same batch assigned before.
func (s *Service) namingBatch(ctx context.Context, key string, chunk []candidate, assigned []bool) (int, error) {
	here := 0
	var lost []string
	for i, won := range assigned {
		if won {
			here++
		} else {
			lost = append(lost, chunk[i].key)
		}
	}
	if len(lost) == 0 {
		return here, nil
	}
	entries, err := s.o.Ledger.Scores(ctx, lost)
	if err != nil {
		return 0, fmt.Errorf("read ticker scores: %w", err)
	}
	for _, k := range lost {
		if e, ok := entries[k]; ok && e.State == analysis.StatePending && e.Batch == key {
			here++
		}
	}
	return here, nil
}

// batchJob is a batch message's job: the batch, run unless done. The
// message takes the batch the fan-out planned for it at once; one another
// run holds is waited for.
func (s *Service) batchJob(ctx context.Context, key string) error {
	var sp spend
	h, won, err := s.claim(ctx, analysis.Claim{Key: key, Kind: analysis.ClaimBatch, Queued: true})
	if err != nil {
		return err
	}
	if !won {
		s.o.Logger.InfoContext(ctx, "ticker batch done by another run", "batch", key[:12])
		return nil
	}
	f, err := s.runBatch(ctx, h, &sp)
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

// runBatch scores the members of the batch h holds — its entries pending
// in it, their data validated again (analysis.DecodeTicker) — and stores
// every valid score at once, whatever else is wrong. The answers kept for
// the batch come first: a run resuming it (its owner died, ran out of time,
// or could not store every score) takes from them every ticker they scored
// validly, by symbol, and pays nothing for those again. Then, for the
// tickers still without a valid entry, one call — or, after an answer, one
// repair asking only for them — within analysis.MaxAnswersPerClaim. A
// ticker the model answered but never validly gets the rules analyst's
// score (final: the same request would pay for the same); one the model
// gave no answer for stays pending. The batch is complete only when every
// member is settled; else it is released for a later run, its answers kept.
func (s *Service) runBatch(ctx context.Context, h *held, sp *spend) (*failure, error) {
	keys := slices.Clone(h.c.Members)
	for _, k := range h.need {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	entries, err := s.o.Ledger.Scores(ctx, keys)
	if err != nil {
		s.release(ctx, h)
		return nil, fmt.Errorf("read the scores of a ticker batch: %w", err)
	}
	var all, pending []member // the members named by the batch; those pending
	unsettled := 0
	for _, k := range keys {
		e, ok := entries[k]
		switch {
		case !ok:
			unsettled++ // not assigned yet: its planner may still be at work
			continue
		case e.Batch != h.c.Key:
			continue // another batch's
		}
		sym, snap, err := analysis.DecodeTicker(e.Data)
		if err != nil || sym != e.Ticker {
			if e.State == analysis.StatePending {
				s.o.Logger.ErrorContext(ctx, "ticker data in the ledger not valid: not sent to the model (a portfolio that needs the ticker plans it anew)",
					"ticker", e.Ticker, "error", err)
				unsettled++
			}
			continue
		}
		m := member{entry: e, pos: analysis.Position{Symbol: sym, Market: &snap, Status: analysis.DataOK}}
		all = append(all, m)
		if e.State == analysis.StatePending {
			pending = append(pending, m)
		}
	}
	if len(pending) == 0 {
		s.finish(ctx, h, unsettled)
		return nil, nil
	}
	bySym := map[string]member{}
	for _, m := range pending {
		bySym[m.pos.Symbol] = m
	}
	scores := map[string]analysis.TickerScore{}
	var (
		model     string
		f         *failure
		problems  []string
		truncated bool
		noneValid bool
	)
	// The answers kept for the batch, by symbol: parsed against the whole
	// batch, so that the problems are those of the tickers left.
	kept := h.claim().Answers
	if len(kept) > 0 {
		whole := analysis.TickerCall{Symbols: symbolsOf(all)}
		for _, a := range kept {
			comp, err := a.Completion()
			tr, fa := classify(err)
			if fa != nil {
				f = fa
				continue
			}
			ans := analysis.ParseTickers(whole, []byte(comp.Content))
			valid := 0
			for sym, v := range ans.Scores {
				if _, need := bySym[sym]; !need {
					continue
				}
				if _, dup := scores[sym]; !dup {
					scores[sym], valid = v, valid+1
					model = firstNonEmpty(comp.Model, model)
				}
			}
			problems, truncated, noneValid = cut(ans.Problems, tr), tr, valid == 0
		}
		s.o.Metrics.Add(deploy.LLMAnswersReused, float64(len(kept)))
		s.o.Logger.InfoContext(ctx, "paid answers reused from the ledger, ticker by ticker: not paid again", "claim", h.c.Key[:12],
			"answers", len(kept), "scored", len(scores), "pending", len(pending))
	}
	remaining := func() []member {
		var out []member
		for _, m := range pending {
			if _, ok := scores[m.pos.Symbol]; !ok {
				out = append(out, m)
			}
		}
		return out
	}
	for attempt := len(kept); f == nil; attempt++ {
		left := remaining()
		if len(left) == 0 {
			break
		}
		if attempt >= analysis.MaxAnswersPerClaim {
			f = afterRepair(problems, truncated)
			break
		}
		factor := 1
		var asked []string // the problems a repair names
		if attempt > 0 {
			asked = problems
			if truncated {
				factor = 2
			}
		}
		call := analysis.NewTickerCall(entriesOf(left), asked, factor)
		if attempt > 0 {
			if truncated && noneValid && min(s.o.MaxCompletionTokens, call.Request.MaxCompletionTokens) <= min(s.o.MaxCompletionTokens, call.Request.MaxCompletionTokens/factor) {
				f = &failure{reason: fmt.Sprintf("the answer was cut off at the completion cap, the ceiling (%s): not repaired", deploy.EnvXAIMaxCompletionTokens), final: true}
				break
			}
			s.o.Logger.WarnContext(ctx, "ticker answer partly rejected: asking again for the faulty tickers only", "batch", h.c.Key[:12],
				"valid", len(scores), "faulty", len(left), "first", firstOf(problems))
		}
		comp, err := s.pay(ctx, h, call.Request, sp)
		tr, fc := classify(err)
		if fc != nil {
			f = fc
			break
		}
		if comp.Model != "" {
			model = comp.Model
		}
		a := analysis.ParseTickers(call, []byte(comp.Content))
		for sym, v := range a.Scores {
			scores[sym] = v
		}
		problems, truncated, noneValid = cut(a.Problems, tr), tr, len(a.Scores) == 0
	}
	// Store every score the model gave validly; the rest per the failure.
	var settle []analysis.ScoreEntry
	left := 0
	for _, m := range pending {
		e := m.entry
		if v, ok := scores[m.pos.Symbol]; ok {
			v.Source = analysis.SourceModel
			e.Verdict, e.Model = &v, model
		} else if f != nil && f.final {
			v := analysis.RulesTicker(m.pos)
			e.Verdict, e.Model, e.Reason = &v, analysis.RulesName, f.reason
		} else {
			left++
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
	s.finish(ctx, h, left+unsettled)
	return f, nil
}

// finish completes the batch when every member is settled (unsettled 0),
// else releases it for a later run.
func (s *Service) finish(ctx context.Context, h *held, unsettled int) {
	if unsettled > 0 {
		s.release(ctx, h)
		return
	}
	s.complete(ctx, h)
}

// cut puts the note of an answer cut at its cap before its problems.
func cut(problems []string, truncated bool) []string {
	if truncated {
		return append([]string{truncatedProblem}, problems...)
	}
	return problems
}

func symbolsOf(ms []member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.pos.Symbol
	}
	slices.Sort(out)
	return out
}

func entriesOf(ms []member) []analysis.TickerEntry {
	out := make([]analysis.TickerEntry, len(ms))
	for i, m := range ms {
		out[i] = analysis.TickerEntry{Symbol: m.pos.Symbol, Data: m.entry.Data}
	}
	return out
}

func firstOf(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}
