package marketdata

import (
	"fmt"
	"math"
	"slices"
)

// This file is the ledger of corporate actions and its reading: bars are
// stored as the market printed them, each action is one Adjustment, and a
// window of history is adjusted when it is read, as of a date, by every
// adjustment after each bar (the pattern of Zipline's daily bars and
// adjustments database, and of QuantConnect LEAN's raw data and factor
// files). Nothing stored is rewritten when an action is learnt late: the
// ledger grows, the reader gets it right.

// AdjustmentKind says what an adjustment does to the prices before it.
type AdjustmentKind string

// The kinds of adjustment. A cash dividend would be another kind, its price
// factor 1 − amount ÷ the close before its ex date and its volume factor 1.
const (
	// KindSplit: To new shares for every From old ones; prices before it
	// are multiplied by From/To and volumes by To/From.
	KindSplit AdjustmentKind = "split"
)

// Adjustment is one entry of the ledger: a corporate action of Ticker
// effective at the open of Date (a split's execution date, a dividend's ex
// date), which changes the prices of every bar dated before it.
type Adjustment struct {
	Ticker string
	// Date is YYYY-MM-DD: the action applies to bars dated before it.
	Date string
	Kind AdjustmentKind
	// ID is the provider's id of the action ("" when it gives none).
	ID string
	// From and To are a split's share counts: To new for every From old.
	From, To float64
}

// Adjustment returns the split as a ledger entry.
func (s Split) Adjustment() Adjustment {
	return Adjustment{Ticker: s.Ticker, Date: s.ExecutionDate, Kind: KindSplit, ID: s.ID, From: s.From, To: s.To}
}

// PriceFactor is what the prices of a bar before the adjustment are
// multiplied by (1/4 for a 4-for-1 split); 1 for an unknown kind.
func (a Adjustment) PriceFactor() float64 {
	if a.Kind == KindSplit && a.To > 0 {
		return a.From / a.To
	}
	return 1
}

// VolumeFactor is what the volume of a bar before the adjustment is
// multiplied by (4 for a 4-for-1 split); 1 for an unknown kind.
func (a Adjustment) VolumeFactor() float64 {
	if a.Kind == KindSplit && a.From > 0 {
		return a.To / a.From
	}
	return 1
}

// Ratio is the move of a price across the adjustment that it explains: the
// close after over the close before, unadjusted (1/4 for a 4-for-1 split).
func (a Adjustment) Ratio() float64 { return a.PriceFactor() }

// ValidateAdjustment checks that an adjustment can be applied: a real date,
// a known kind and, for a split, finite positive share counts.
func ValidateAdjustment(a Adjustment) error {
	if !isDate(a.Date) {
		return fmt.Errorf("adjustment of %q: date %q is not YYYY-MM-DD", a.Ticker, a.Date)
	}
	switch a.Kind {
	case KindSplit:
		return ValidateSplit(Split{Ticker: a.Ticker, ExecutionDate: a.Date, From: a.From, To: a.To})
	}
	return fmt.Errorf("adjustment of %q on %s: unknown kind %q", a.Ticker, a.Date, a.Kind)
}

// Same reports whether a and b are the same action, whatever their ids: the
// same ticker, date, kind and share counts. A provider may list one split
// twice under two ids; applied twice, it would divide the prices before it
// twice.
func (a Adjustment) Same(b Adjustment) bool {
	return a.Ticker == b.Ticker && a.Date == b.Date && a.Kind == b.Kind && a.From == b.From && a.To == b.To
}

// Adjust returns a copy of bars (one ticker's, ascending) adjusted as of
// asOf by the ledger: each bar's open, high, low and close multiplied by the
// PriceFactor, and its volume by the VolumeFactor, of every adjustment dated
// after the bar and on or before asOf (adjustments after asOf had not
// happened on that day), each action once (see Same). The ledger is the
// bars' ticker's. The bars given are not changed.
func Adjust(bars []Bar, ledger []Adjustment, asOf string) []Bar {
	out := make([]Bar, len(bars))
	copy(out, bars)
	for i, a := range ledger {
		if a.Date > asOf || (len(bars) > 0 && a.Date <= bars[0].Date) {
			continue
		}
		if slices.ContainsFunc(ledger[:i], a.Same) {
			continue // listed twice under two ids: applied once
		}
		p, v := a.PriceFactor(), a.VolumeFactor()
		if p == 1 && v == 1 {
			continue
		}
		for i := range out {
			if out[i].Date >= a.Date {
				break
			}
			b := &out[i]
			b.Open, b.High, b.Low, b.Close, b.Volume = b.Open*p, b.High*p, b.Low*p, b.Close*p, b.Volume*v
		}
	}
	return out
}

// ContinuityBound is the close-to-close move (either way) beyond which a
// move of an adjusted series is reported when no adjustment of the ledger
// explains it: a close at least 1.5 times, or at most two thirds of, the
// one before. A split not listed yet leaves such a jump (a 2-for-1 split
// halves the close); so, rarely, does the market.
const ContinuityBound = 1.5

// continuityTolerance is how close a move must be to an adjustment's ratio
// (relative) to be taken for it, and continuityDays how far from the
// adjustment's date (calendar days, either way).
const (
	continuityTolerance = 0.03
	continuityDays      = 7
)

// Discontinuity is a close-to-close move of an adjusted series that looks
// like a corporate action: Move is the close of Date over the close of the
// bar before (Prev).
type Discontinuity struct {
	Ticker     string
	Prev, Date string
	Move       float64
	// Near is the ledger's adjustment whose ratio (or its inverse) the move
	// matches, dated within a week of it: the adjustment is probably dated
	// wrong. Nil: no adjustment explains it (an action not listed yet, or a
	// real move beyond ContinuityBound).
	Near *Adjustment
}

// Explained reports whether the move matches an adjustment of the ledger.
func (d Discontinuity) Explained() bool { return d.Near != nil }

func (d Discontinuity) String() string {
	if d.Near != nil {
		return fmt.Sprintf("%s close %s→%s moved ×%.4f, the ratio of its %s of %s (id %q): the ledger's date is probably off",
			d.Ticker, d.Prev, d.Date, d.Move, d.Near.Kind, d.Near.Date, d.Near.ID)
	}
	return fmt.Sprintf("%s close %s→%s moved ×%.4f, beyond ×%.2f and explained by no adjustment of the ledger (an action not listed yet?)",
		d.Ticker, d.Prev, d.Date, d.Move, ContinuityBound)
}

// CheckContinuity returns the discontinuities of an adjusted series (one
// ticker's, ascending, as Adjust returns it) among the moves onto bars dated
// from from on: a move that matches the ratio of an adjustment of the ledger
// dated within a week (that adjustment's date is probably off: the jump it
// should remove is still there, or it made one), or a move beyond
// ContinuityBound that nothing explains.
func CheckContinuity(ticker string, adjusted []Bar, ledger []Adjustment, from string) []Discontinuity {
	var out []Discontinuity
	for i := 1; i < len(adjusted); i++ {
		b, prev := adjusted[i], adjusted[i-1]
		if b.Date < from || prev.Close <= 0 {
			continue
		}
		move := b.Close / prev.Close
		d := Discontinuity{Ticker: ticker, Prev: prev.Date, Date: b.Date, Move: move}
		for j := range ledger {
			a := ledger[j]
			if a.Ticker != ticker || !within(a.Date, b.Date, continuityDays) {
				continue
			}
			r := a.Ratio()
			if matches(move, r) || matches(move, 1/r) {
				d.Near = &ledger[j]
				break
			}
		}
		if d.Near != nil || move >= ContinuityBound || move <= 1/ContinuityBound {
			out = append(out, d)
		}
	}
	return out
}

func matches(move, ratio float64) bool {
	return ratio != 1 && math.Abs(move-ratio) <= continuityTolerance*ratio
}

// within reports whether dates a and b (YYYY-MM-DD) are at most days
// calendar days apart.
func within(a, b string, days int) bool {
	da, ok1 := civilDay(a)
	db, ok2 := civilDay(b)
	if !ok1 || !ok2 {
		return false
	}
	diff := da.Sub(db).Hours() / 24
	return math.Abs(diff) <= float64(days)
}
