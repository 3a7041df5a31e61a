package analysis

import (
	"math"
	"slices"
)

// Figures are the numbers a portfolio manager reads, computed here from the
// positions so that the model never has to (or gets to) invent one: the
// manager's data block carries them and the rules manager uses them.
type Figures struct {
	// Positions, one per Input position, in the same order.
	Positions []PositionFigures
	// Weighted counts the positions with both a quantity and a price: the
	// weights cover those and nothing else. Unweighted names the others.
	Weighted   int
	Unweighted []string
	// MarketValue is the sum over the weighted positions (nil if none).
	MarketValue *float64
	// CostBasis, UnrealizedPnL and UnrealizedPnLPct sum the positions that
	// have a cost basis and a market value (WithCost of them).
	WithCost                                   int
	CostBasis, UnrealizedPnL, UnrealizedPnLPct *float64
	// Largest is the weighted position of the largest weight, LargestPct
	// its weight, Top3Pct the weight of the three largest together.
	Largest             string
	LargestPct, Top3Pct *float64
	// AvgVolatilityPct is the weighted mean of the 20-day volatility over
	// the weighted positions that have one (nil if none).
	AvgVolatilityPct *float64
}

// PositionFigures are one position's derived numbers; nil when an input is
// missing.
type PositionFigures struct {
	Symbol string
	// AvgCost is CostBasis ÷ Quantity.
	AvgCost *float64
	// MarketValue is Quantity × Price.
	MarketValue *float64
	// UnrealizedPnL is MarketValue − CostBasis; UnrealizedPnLPct relative
	// to CostBasis.
	UnrealizedPnL, UnrealizedPnLPct *float64
	// WeightPct is MarketValue over the weighted positions' total.
	WeightPct *float64
	// Distances of the price from its references, in percent.
	VsMA50Pct, VsMA200Pct, Below52WHighPct, Above52WLowPct *float64
	// ATRPct is ATR(14) as a percentage of the price.
	ATRPct *float64
}

// ComputeFigures derives the figures of in.
func ComputeFigures(in Input) Figures {
	var fg Figures
	total, cost, pnlValue := 0.0, 0.0, 0.0
	for _, p := range in.Positions {
		pf := PositionFigures{Symbol: p.Symbol}
		if positive(p.Quantity) && p.CostBasis != nil && *p.CostBasis >= 0 {
			pf.AvgCost = ptr(*p.CostBasis / *p.Quantity)
		}
		price := p.Price()
		if p.Quantity != nil && positive(price) {
			v := *p.Quantity * *price
			pf.MarketValue = &v
			total += v
			fg.Weighted++
			if p.CostBasis != nil && *p.CostBasis > 0 {
				pf.UnrealizedPnL = ptr(v - *p.CostBasis)
				pf.UnrealizedPnLPct = ptr((v - *p.CostBasis) / *p.CostBasis * 100)
				cost += *p.CostBasis
				pnlValue += v
				fg.WithCost++
			}
		} else {
			fg.Unweighted = append(fg.Unweighted, p.Symbol)
		}
		if m := p.Market; m != nil {
			pf.VsMA50Pct = pctFrom(price, m.MA50)
			pf.VsMA200Pct = pctFrom(price, m.MA200)
			if b := pctFrom(price, m.High52W); b != nil {
				pf.Below52WHighPct = ptr(-*b)
			}
			pf.Above52WLowPct = pctFrom(price, m.Low52W)
			if positive(price) && m.ATR != nil {
				pf.ATRPct = ptr(*m.ATR / *price * 100)
			}
		}
		fg.Positions = append(fg.Positions, pf)
	}
	if fg.Weighted == 0 {
		return fg
	}
	fg.MarketValue = ptr(total)
	if fg.WithCost > 0 {
		fg.CostBasis, fg.UnrealizedPnL = ptr(cost), ptr(pnlValue-cost)
		fg.UnrealizedPnLPct = ptr((pnlValue - cost) / cost * 100)
	}
	if total <= 0 {
		return fg
	}
	var weights []float64
	volSum, volWeight := 0.0, 0.0
	for i := range fg.Positions {
		pf := &fg.Positions[i]
		if pf.MarketValue == nil {
			continue
		}
		w := *pf.MarketValue / total * 100
		pf.WeightPct = ptr(w)
		weights = append(weights, w)
		if fg.LargestPct == nil || w > *fg.LargestPct {
			fg.Largest, fg.LargestPct = pf.Symbol, ptr(w)
		}
		if m := in.Positions[i].Market; m != nil && m.Volatility20DPct != nil {
			volSum += *m.Volatility20DPct * w
			volWeight += w
		}
	}
	slices.SortFunc(weights, func(a, b float64) int { return cmpFloat(b, a) })
	top := 0.0
	for _, w := range weights[:min(3, len(weights))] {
		top += w
	}
	fg.Top3Pct = ptr(top)
	if volWeight > 0 {
		fg.AvgVolatilityPct = ptr(volSum / volWeight)
	}
	return fg
}

// pctFrom is (v − ref) / ref × 100 when both are known and ref is positive.
func pctFrom(v, ref *float64) *float64 {
	if v == nil || !positive(ref) {
		return nil
	}
	return ptr((*v - *ref) / *ref * 100)
}

func positive(v *float64) bool { return v != nil && *v > 0 && !math.IsInf(*v, 0) }

func ptr(v float64) *float64 { return &v }

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
