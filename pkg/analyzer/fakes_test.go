package analyzer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsmseven/backend/internal/devstack/memanalysis"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/symbol"
)

type holding struct {
	positions []analyzer.Holding
	invalid   []analysis.Excluded
}

// fakePortfolios serves holdings from a map, like the shared tables.
type fakePortfolios map[string]holding

func (f fakePortfolios) Names(context.Context) ([]string, error) {
	var out []string
	for name := range f {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

func (f fakePortfolios) Holdings(_ context.Context, name string) ([]analyzer.Holding, []analysis.Excluded, error) {
	h, ok := f[name]
	if !ok {
		return nil, nil, fmt.Errorf("holdings of %q: %w", name, analyzer.ErrUnknownPortfolio)
	}
	return h.positions, h.invalid, nil
}

func (f fakePortfolios) Symbols(context.Context) ([]string, error) {
	seen := map[string]bool{}
	for _, h := range f {
		for _, p := range h.positions {
			if s, err := symbol.Normalize(p.Symbol); err == nil {
				seen[s] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// fakeMarket serves snapshots from a map and records the peak concurrency.
type fakeMarket struct {
	mu       sync.Mutex
	rows     map[string]indicators.Snapshot
	err      error
	delay    time.Duration
	calls    atomic.Int64
	inFlight atomic.Int64
	peak     atomic.Int64
}

func (f *fakeMarket) Latest(ctx context.Context, t string) (indicators.Snapshot, bool, error) {
	f.calls.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return indicators.Snapshot{}, false, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return indicators.Snapshot{}, false, f.err
	}
	r, ok := f.rows[t]
	return r, ok, nil
}

func (f *fakeMarket) set(sym string, s indicators.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows[sym] = s
}

// fakeQueue is the in-memory queue, with the helpers the tests read it by.
type fakeQueue struct{ *memanalysis.Queue }

func (q fakeQueue) portfolios() []string {
	var out []string
	for _, m := range q.Sent() {
		if m.Kind == analysisqueue.KindPortfolio {
			out = append(out, m.Portfolio)
		}
	}
	return out
}

func (q fakeQueue) batches() []analysisqueue.Message {
	var out []analysisqueue.Message
	for _, m := range q.Sent() {
		if m.Kind == analysisqueue.KindTickers {
			out = append(out, m)
		}
	}
	return out
}

var errBoom = errors.New("boom")

// tickersJSON is a valid ticker-analyst answer scoring each symbol, with
// the signal of the score's band and the band's default action.
func tickersJSON(scores map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(scores)) {
		sig := analysis.SignalFor(min(max(scores[k], 0), 100))
		parts = append(parts, fmt.Sprintf(`{"ticker":%q,"score":%d,"signal":%q,"rationale":"Because of the data.","confidence":"medium","key_risk":"market risk","action":%q}`,
			k, scores[k], sig, analysis.ActionsFor(sig)[0]))
	}
	return `{"tickers":[` + strings.Join(parts, ",") + `]}`
}

// overviewJSON is a valid manager answer with these top actions (ticker,
// action pairs).
func overviewJSON(tops ...string) string {
	var ts []string
	for i := 0; i+1 < len(tops); i += 2 {
		ts = append(ts, fmt.Sprintf(`{"ticker":%q,"action":%q,"reason":"Most important."}`, tops[i], tops[i+1]))
	}
	return `{"summary":"Two of three holdings look fine.","overall_risk":"medium","concentration_flags":[],"top_actions":[` + strings.Join(ts, ",") + `]}`
}
