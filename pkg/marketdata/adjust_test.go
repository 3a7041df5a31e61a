package marketdata_test

import (
	"math"
	"testing"

	"github.com/zsmseven/backend/pkg/marketdata"
)

func adjBar(date string, c, v float64) marketdata.Bar {
	return marketdata.Bar{Date: date, Open: c, High: c + 1, Low: c - 1, Close: c, Volume: v}
}

// AAPL's 4-for-1 split of 2020-08-31: the last close before it, 499.23 on
// 2020-08-28, is 124.8075 adjusted (Polygon's adjusted answer, and
// 499.23 / 4); its volume 46,907,479 becomes 187,629,916.
func TestAdjustAppliesEachAdjustmentAfterTheBar(t *testing.T) {
	bars := []marketdata.Bar{adjBar("2020-08-27", 500.04, 38888096), adjBar("2020-08-28", 499.23, 46907479), adjBar("2020-08-31", 129.04, 225702700)}
	split := marketdata.Split{Ticker: "AAPL", ExecutionDate: "2020-08-31", From: 1, To: 4, ID: "E1"}.Adjustment()
	if split.Kind != marketdata.KindSplit || split.PriceFactor() != 0.25 || split.VolumeFactor() != 4 || marketdata.ValidateAdjustment(split) != nil {
		t.Fatalf("split adjustment %+v", split)
	}
	got := marketdata.Adjust(bars, []marketdata.Adjustment{split}, "2020-08-31")
	want := []float64{125.01, 124.8075, 129.04}
	for i, w := range want {
		if math.Abs(got[i].Close-w) > 1e-9 {
			t.Errorf("%s close %v, want %v", got[i].Date, got[i].Close, w)
		}
	}
	if got[1].Volume != 187629916 || got[1].High != 125.0575 || got[2].Volume != 225702700 {
		t.Errorf("adjusted bar %+v", got[1])
	}
	if bars[1].Close != 499.23 {
		t.Error("Adjust changed the bars it was given")
	}
	// As of the day before the split, nothing had happened yet.
	if before := marketdata.Adjust(bars, []marketdata.Adjustment{split}, "2020-08-28"); before[1].Close != 499.23 {
		t.Errorf("as of 2020-08-28: %v", before[1].Close)
	}
	// Two splits compound: a 2-for-1 on 2020-08-28 too makes the first bar ×1/8.
	two := marketdata.Adjust(bars, []marketdata.Adjustment{split, {Ticker: "AAPL", Date: "2020-08-28", Kind: marketdata.KindSplit, From: 1, To: 2}}, "2020-08-31")
	if math.Abs(two[0].Close-500.04/8) > 1e-9 || math.Abs(two[1].Close-124.8075) > 1e-9 {
		t.Errorf("two splits: %v %v", two[0].Close, two[1].Close)
	}
	// The same split listed twice under two ids is applied once: the
	// closes of 2020-08-31's split alone (125.01, 124.8075).
	twice := marketdata.Adjust(bars, []marketdata.Adjustment{split, {Ticker: "AAPL", Date: "2020-08-31", Kind: marketdata.KindSplit, From: 1, To: 4, ID: "E2"}}, "2020-08-31")
	if math.Abs(twice[0].Close-125.01) > 1e-9 || math.Abs(twice[1].Close-124.8075) > 1e-9 || twice[1].Volume != 187629916 {
		t.Errorf("a split listed twice: %v %v", twice[0].Close, twice[1].Close)
	}
	// A reverse split (1-for-10) multiplies earlier prices by 10.
	rev := marketdata.Adjust(bars, []marketdata.Adjustment{{Ticker: "AAPL", Date: "2020-08-31", Kind: marketdata.KindSplit, From: 10, To: 1}}, "2020-09-01")
	if rev[1].Close != 4992.3 || rev[1].Volume != 4690747.9 {
		t.Errorf("reverse split: %+v", rev[1])
	}
}

func TestValidateAdjustment(t *testing.T) {
	for _, a := range []marketdata.Adjustment{
		{Ticker: "X", Date: "2020-02-30", Kind: marketdata.KindSplit, From: 1, To: 2},
		{Ticker: "X", Date: "2020-02-03", Kind: marketdata.KindSplit, From: 0, To: 2},
		{Ticker: "X", Date: "2020-02-03", Kind: marketdata.KindSplit, From: 1, To: math.Inf(1)},
		{Ticker: "X", Date: "2020-02-03", Kind: "dividend", From: 1, To: 2},
	} {
		if marketdata.ValidateAdjustment(a) == nil {
			t.Errorf("%+v accepted", a)
		}
	}
	if f := (marketdata.Adjustment{Kind: "dividend"}).PriceFactor(); f != 1 {
		t.Errorf("unknown kind factor %v", f)
	}
}

// The continuity check on an adjusted series: an unlisted 4-for-1 split
// leaves a move of ×0.25 that nothing explains; a split listed a day early
// leaves two moves of its ratio (×4 on the wrong date, ×0.25 on the right
// one); ordinary moves, and a real move below the bound, are not reported.
func TestCheckContinuity(t *testing.T) {
	raw := []marketdata.Bar{adjBar("2017-01-09", 120, 1), adjBar("2017-01-10", 121, 1), adjBar("2017-01-11", 122, 1), adjBar("2017-01-12", 30.6, 1), adjBar("2017-01-13", 31, 1), adjBar("2017-01-17", 21, 1)}
	unlisted := marketdata.CheckContinuity("TQQQ", marketdata.Adjust(raw, nil, "2017-01-17"), nil, "2017-01-01")
	if len(unlisted) != 1 || unlisted[0].Date != "2017-01-12" || unlisted[0].Explained() || math.Abs(unlisted[0].Move-30.6/122) > 1e-12 {
		t.Fatalf("unlisted split: %+v", unlisted)
	}
	// 31 → 21 is ×0.677: above two thirds, not reported.
	early := marketdata.Adjustment{Ticker: "TQQQ", Date: "2017-01-11", Kind: marketdata.KindSplit, From: 1, To: 4, ID: "early"}
	got := marketdata.CheckContinuity("TQQQ", marketdata.Adjust(raw, []marketdata.Adjustment{early}, "2017-01-17"), []marketdata.Adjustment{early}, "2017-01-01")
	if len(got) != 2 || got[0].Date != "2017-01-11" || got[1].Date != "2017-01-12" || !got[0].Explained() || !got[1].Explained() || got[0].Near.ID != "early" {
		t.Fatalf("split listed a day early: %+v", got)
	}
	right := early
	right.Date = "2017-01-12"
	if got := marketdata.CheckContinuity("TQQQ", marketdata.Adjust(raw, []marketdata.Adjustment{right}, "2017-01-17"), []marketdata.Adjustment{right}, "2017-01-01"); len(got) != 0 {
		t.Fatalf("split at its date: %+v", got)
	}
	// Only moves onto bars from the given date are checked.
	if got := marketdata.CheckContinuity("TQQQ", raw, nil, "2017-01-13"); len(got) != 0 {
		t.Fatalf("from 2017-01-13: %+v", got)
	}
	if s := unlisted[0].String(); s == "" {
		t.Error("no description")
	}
}
