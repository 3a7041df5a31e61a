package analyzer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/symbol"
)

// gather reads the holdings and the newest market data of every symbol,
// and validates what reaches a prompt or a stored item: symbols are
// normalized (an invalid one is excluded and reported), lots of one symbol
// are merged, and a row whose trading date is not a valid one
// (analysis.CheckDataDate) or whose price is not positive counts as no
// data. A portfolio of more than analysis.MaxPositions keeps its largest by
// market value and counts the others as omitted.
func (s *Service) gather(ctx context.Context, name string, now time.Time) (analysis.Input, error) {
	holdings, excluded, err := s.o.Portfolios.Holdings(ctx, name)
	if err != nil {
		if errors.Is(err, ErrUnknownPortfolio) {
			return analysis.Input{}, fmt.Errorf("portfolio %q: %w", name, ErrUnknownPortfolio)
		}
		return analysis.Input{}, fmt.Errorf("read holdings of %q: %w", name, err)
	}
	in := analysis.Input{Portfolio: name, LastTradingDay: s.o.LastTradingDay(now), Excluded: excluded}
	// One position per symbol: lots of the same symbol are summed (a
	// quantity or cost is only known when every lot has it). A cost basis
	// is a lot's total cost, so the sum is the position's total cost.
	bySymbol := map[string]*analysis.Position{}
	var order []string
	for _, h := range holdings {
		sym, err := symbol.Normalize(h.Symbol)
		if err != nil {
			in.Excluded = append(in.Excluded, analysis.Excluded{Value: h.Symbol, Reason: err.Error()})
			continue
		}
		if cur, ok := bySymbol[sym]; ok {
			cur.Quantity = sum(cur.Quantity, h.Quantity)
			cur.CostBasis = sum(cur.CostBasis, h.CostBasis)
			continue
		}
		bySymbol[sym] = &analysis.Position{Symbol: sym, Quantity: h.Quantity, CostBasis: h.CostBasis}
		order = append(order, sym)
	}
	for _, e := range in.Excluded {
		s.o.Logger.WarnContext(ctx, "symbol excluded from analysis", "portfolio", name, "reason", e.Reason)
	}
	if len(in.Excluded) > 0 {
		s.o.Metrics.Add(deploy.InvalidSymbols, float64(len(in.Excluded)))
	}
	if len(order) == 0 {
		return in, fmt.Errorf("portfolio %q: %w", name, ErrNoPositions)
	}
	slices.Sort(order)
	snaps, err := s.latest(ctx, order)
	if err != nil {
		return in, err
	}
	for i, sym := range order {
		pos := *bySymbol[sym]
		pos.Status = analysis.DataMissing
		if snap := snaps[i]; snap != nil {
			if err := s.usable(*snap, in.LastTradingDay); err != nil {
				s.o.Logger.WarnContext(ctx, "market data not usable: counted as missing", "portfolio", name, "ticker", sym, "error", err)
			} else {
				pos.Market, pos.Status = snap, analysis.DataOK
				if snap.AsOf < in.LastTradingDay {
					pos.Status = analysis.DataStale
					pos.StaleSessions = max(s.o.Sessions(snap.AsOf, in.LastTradingDay), 1)
				}
			}
		}
		in.Positions = append(in.Positions, pos)
	}
	if len(in.Positions) > analysis.MaxPositions {
		keepLargest(&in)
		s.o.Logger.WarnContext(ctx, "portfolio larger than an analysis: its largest positions analyzed, the others counted", "portfolio", name,
			"positions", len(in.Positions)+in.Omitted, "analyzed", len(in.Positions), "omitted", in.Omitted)
	}
	return in, nil
}

// usable checks a market-data row before it reaches a prompt: a valid
// trading date not after the last trading day, a positive price.
func (s *Service) usable(snap indicators.Snapshot, lastTradingDay string) error {
	if err := analysis.CheckDataDate(snap.AsOf, lastTradingDay); err != nil {
		return err
	}
	if !(snap.Price > 0) {
		return fmt.Errorf("price %v is not positive", snap.Price)
	}
	return nil
}

// keepLargest keeps the analysis.MaxPositions largest positions by market
// value (those without one after, by symbol), in symbol order, and counts
// the others as omitted with their value.
func keepLargest(in *analysis.Input) {
	value := func(p analysis.Position) float64 {
		if p.Quantity == nil || p.Market == nil {
			return -1
		}
		return *p.Quantity * p.Market.Price
	}
	byValue := slices.Clone(in.Positions)
	slices.SortStableFunc(byValue, func(a, b analysis.Position) int { return cmp.Compare(value(b), value(a)) })
	kept, dropped := byValue[:analysis.MaxPositions], byValue[analysis.MaxPositions:]
	in.Omitted = len(dropped)
	total, known := 0.0, false
	for _, p := range dropped {
		if v := value(p); v >= 0 {
			total, known = total+v, true
		}
	}
	if known {
		in.OmittedValue = &total
	}
	slices.SortFunc(kept, func(a, b analysis.Position) int { return cmp.Compare(a.Symbol, b.Symbol) })
	in.Positions = kept
}

func sum(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	v := *a + *b
	return &v
}

// latest reads the newest market data of each symbol, at most Parallel at
// a time (nil where there is none). The first error cancels the rest.
func (s *Service) latest(ctx context.Context, symbols []string) ([]*indicators.Snapshot, error) {
	return s.readLatest(ctx, symbols, nil)
}

// readLatest is latest; with skip set, a symbol whose row cannot be read is
// reported to skip and left nil, and the others are read on.
func (s *Service) readLatest(ctx context.Context, symbols []string, skip func(symbol string, err error)) ([]*indicators.Snapshot, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]*indicators.Snapshot, len(symbols))
	sem := make(chan struct{}, s.o.Parallel)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for i, sym := range symbols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			snap, ok, err := s.o.MarketData.Latest(ctx, sym)
			switch {
			case err != nil && skip != nil && ctx.Err() == nil:
				skip(sym, err)
			case err != nil:
				once.Do(func() { firstErr = fmt.Errorf("read latest ticker data of %s: %w", sym, err); cancel() })
			case ok:
				out[i] = &snap
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read latest ticker data: %w", err)
	}
	return out, nil
}

// parallel runs f for each index below n, at most limit at once, and
// returns the first error.
func parallel(ctx context.Context, n, limit int, f func(ctx context.Context, i int) error) error {
	sem := make(chan struct{}, max(limit, 1))
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := f(ctx, i); err != nil {
				once.Do(func() { firstErr = err })
			}
		}()
	}
	wg.Wait()
	return firstErr
}
