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
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/deploy"
)

// ErrNoQueue means a fan-out was asked of a service without an analysis
// queue.
var ErrNoQueue = errors.New("no analysis queue configured (" + deploy.EnvAnalysisQueueURL + ")")

// fanOut queues one message per portfolio — every portfolio of the shared
// table when names is nil — on the analysis queue, never-analyzed first,
// then by the age of their latest analysis (oldest first), then by name; a
// standard queue delivers roughly in that order. A name the analysis would
// refuse is skipped (counted, logged) rather than queued to fail five
// times. force is carried in every message. The invocation fails, naming
// them, if some messages were not accepted: a retry queues them all again,
// and the reservations make the repeated ones cost nothing.
func (s *Service) fanOut(ctx context.Context, names []string, force bool) (Result, error) {
	res := newResult()
	res.RunID = s.o.RunID(ctx)
	if s.o.Queue == nil {
		return res, ErrNoQueue
	}
	if names == nil {
		all, err := s.o.Portfolios.List(ctx)
		if err != nil {
			return res, fmt.Errorf("list portfolios: %w", err)
		}
		for _, p := range all {
			names = append(names, p.Name)
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
	msgs := make([]analysisqueue.Message, len(valid))
	for i, n := range valid {
		msgs[i] = analysisqueue.New(n, res.RunID, force, now)
	}
	sent, failed, err := s.o.Queue.Send(ctx, msgs)
	notSent := map[string]string{}
	for _, f := range failed {
		notSent[f.Portfolio] = fmt.Sprintf("not queued: %s %s", f.Code, f.Message)
	}
	for _, n := range valid {
		if why, ok := notSent[n]; ok {
			res.add(Outcome{Portfolio: n, Status: OutcomeFailed, Error: why})
			continue
		}
		res.add(Outcome{Portfolio: n, Status: OutcomeQueued})
	}
	s.o.Metrics.Add(deploy.AnalysesQueued, float64(sent))
	s.o.Metrics.Add(deploy.AnalysisFailed, float64(len(failed)))
	s.o.Logger.InfoContext(ctx, "analysis fan-out", "runId", res.RunID, "portfolios", len(names), "queued", sent, "notQueued", len(failed),
		"skipped", len(res.Skipped), "force", force)
	if err != nil {
		return res, fmt.Errorf("queue analyses: %w", err)
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("%d of %d portfolios not queued: %s", len(failed), len(valid), strings.Join(res.Failed, ", "))
	}
	return res, nil
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
			items, err := s.o.Store.Recent(ctx, n, 1)
			if err != nil && !errors.Is(err, analysisdb.ErrUnreadable) {
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
