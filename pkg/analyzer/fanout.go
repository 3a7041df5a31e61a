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
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/symbol"
)

// ErrNoQueue means a fan-out was asked of a service without an analysis
// queue.
var ErrNoQueue = errors.New("no analysis queue configured (" + deploy.EnvAnalysisQueueURL + ")")

// fanOut queues the night's work on the analysis queue: first one message
// per batch of the held tickers without a score (plan), so that every
// ticker is scored once before the portfolios need it, then one message
// per portfolio — every portfolio of the shared table when names is nil —
// never-analyzed first, then by the age of their latest analysis (oldest
// first), then by name; a standard queue delivers roughly in that order. A
// name the analysis would refuse is skipped (counted, logged) rather than
// queued to fail five times. force is carried in every message (and scores
// the tickers again). The invocation fails, naming them, if some messages
// were not accepted: a retry queues them all again, and the claims make
// the repeated ones cost nothing. A plan that fails is logged and left to
// the portfolios, which score what they need themselves.
func (s *Service) fanOut(ctx context.Context, names []string, force bool) (Result, error) {
	res := newResult()
	res.RunID = s.o.RunID(ctx)
	if s.o.Queue == nil {
		return res, ErrNoQueue
	}
	all := names == nil
	if all {
		var err error
		if names, err = s.o.Portfolios.Names(ctx); err != nil {
			return res, fmt.Errorf("list portfolios: %w", err)
		}
	}
	var valid []string
	for _, n := range names {
		if slices.Contains(valid, n) {
			continue
		}
		if _, err := analysis.ValidatePortfolioName(n); err != nil || n == AllPortfolios {
			reason := "\"*\" is not a portfolio name"
			if err != nil {
				reason = err.Error()
			}
			s.settle(ctx, Outcome{Portfolio: n, Status: OutcomeSkipped, Reason: reason})
			res.add(Outcome{Portfolio: n, Status: OutcomeSkipped, Reason: reason})
			continue
		}
		valid = append(valid, n)
	}
	latest := s.latestAnalyses(ctx, valid)
	slices.SortStableFunc(valid, func(a, b string) int {
		if c := latest[a].Compare(latest[b]); c != 0 {
			return c // the zero time (never analyzed) first
		}
		return strings.Compare(a, b)
	})
	now := s.o.Now()
	batches, err := s.planNight(ctx, valid, all, force, res.RunID)
	if err != nil {
		s.o.Logger.ErrorContext(ctx, "ticker batches not planned: the portfolios will score their own tickers", "runId", res.RunID, "error", err)
	}
	var msgs []analysisqueue.Message
	for _, b := range batches {
		msgs = append(msgs, analysisqueue.NewBatch(b, res.RunID, now))
	}
	for _, n := range valid {
		msgs = append(msgs, analysisqueue.New(n, res.RunID, force, now))
	}
	sent, failed, err := s.o.Queue.Send(ctx, msgs)
	notSent := map[string]string{}
	batchesSent := len(batches)
	for _, f := range failed {
		if f.Message.Kind == analysisqueue.KindTickers {
			batchesSent-- // the portfolios score its tickers themselves
			continue
		}
		notSent[f.Message.Portfolio] = fmt.Sprintf("not queued: %s %s", f.Code, f.Reason)
	}
	if err != nil {
		batchesSent = 0
		for _, m := range msgs[:sent] {
			if m.Kind == analysisqueue.KindTickers {
				batchesSent++
			}
		}
	}
	for _, n := range valid {
		if why, ok := notSent[n]; ok {
			res.add(Outcome{Portfolio: n, Status: OutcomeFailed, Error: why})
			continue
		}
		res.add(Outcome{Portfolio: n, Status: OutcomeQueued})
	}
	s.o.Metrics.Add(deploy.AnalysesQueued, float64(sent-batchesSent))
	s.o.Metrics.Add(deploy.TickerBatchesQueued, float64(batchesSent))
	s.o.Metrics.Add(deploy.AnalysisFailed, float64(len(notSent)))
	s.o.Logger.InfoContext(ctx, "analysis fan-out", "runId", res.RunID, "portfolios", len(names), "queued", sent-batchesSent, "tickerBatches", batchesSent,
		"notQueued", len(failed), "skipped", len(res.Skipped), "force", force)
	if err != nil {
		return res, fmt.Errorf("queue analyses: %w", err)
	}
	if len(notSent) > 0 {
		return res, fmt.Errorf("%d of %d portfolios not queued: %s", len(notSent), len(valid), strings.Join(res.Failed, ", "))
	}
	return res, nil
}

// planNight plans the held tickers without a score of their data day into
// batches for the queue (analyzer.plan): every held symbol when all, else
// those of the named portfolios. It returns the batches' keys.
func (s *Service) planNight(ctx context.Context, names []string, all, force bool, runID string) ([]string, error) {
	if s.o.LLM == nil || len(names) == 0 {
		return nil, nil
	}
	var symbols []string
	if all {
		var err error
		if symbols, err = s.o.Portfolios.Symbols(ctx); err != nil {
			return nil, fmt.Errorf("list held symbols: %w", err)
		}
	} else {
		for _, n := range names {
			hs, _, err := s.o.Portfolios.Holdings(ctx, n)
			if err != nil {
				continue // its own run says why
			}
			for _, h := range hs {
				if sym, err := symbol.Normalize(h.Symbol); err == nil && !slices.Contains(symbols, sym) {
					symbols = append(symbols, sym)
				}
			}
		}
		slices.Sort(symbols)
	}
	last := s.o.LastTradingDay(s.o.Now())
	// A row that cannot be read is left out of the plan (the portfolios
	// holding it say why), not the whole night's.
	snaps, err := s.readLatest(ctx, symbols, func(sym string, err error) {
		s.o.Logger.WarnContext(ctx, "ticker data not readable: not planned", "ticker", sym, "error", err)
	})
	if err != nil {
		return nil, err
	}
	generation := ""
	if force {
		generation = runID
	}
	kr := s.keyer(generation)
	var cands []candidate
	var keys []string
	for i, sym := range symbols {
		if snaps[i] == nil || s.usable(*snaps[i], last) != nil {
			continue
		}
		c, err := kr.candidate(analysis.Position{Symbol: sym, Market: snaps[i]})
		if err != nil {
			continue
		}
		cands, keys = append(cands, c), append(keys, c.key)
	}
	entries, err := s.o.Ledger.Scores(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("read ticker scores: %w", err)
	}
	var fresh []candidate
	for _, c := range cands {
		if _, ok := entries[c.key]; !ok {
			fresh = append(fresh, c)
		}
	}
	p, err := s.plan(ctx, fresh, "fanout/"+runID, true)
	if err != nil {
		return p.queued, err
	}
	s.o.Logger.InfoContext(ctx, "ticker batches planned", "runId", runID, "tickers", len(cands), "unscored", len(fresh), "batches", len(p.queued))
	return p.queued, nil
}

// latestAnalyses reads the timestamp of each portfolio's newest analysis,
// Parallel at a time; a portfolio without one, or whose read fails (logged),
// gets the zero time: it goes first.
func (s *Service) latestAnalyses(ctx context.Context, names []string) map[string]time.Time {
	out := make(map[string]time.Time, len(names))
	var mu sync.Mutex
	sem := make(chan struct{}, s.o.Parallel)
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			items, err := s.o.Analyses.Recent(ctx, n, 1)
			if err != nil && !errors.Is(err, analysis.ErrUnreadable) {
				s.o.Logger.WarnContext(ctx, "latest analysis not readable: queued first", "portfolio", n, "error", err)
			}
			var t time.Time
			if len(items) > 0 {
				t = items[0].Timestamp
			}
			mu.Lock()
			out[n] = t
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
