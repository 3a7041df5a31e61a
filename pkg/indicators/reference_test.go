package indicators_test

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// The reference tables in testdata/ and where they come from are described in
// testdata/README.md.

// readTable reads a CSV file of testdata/ with a header row into one map per
// row, keyed by column name.
func readTable(t *testing.T, name string) []map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(records) < 2 {
		t.Fatalf("%s: no rows", name)
	}
	rows := make([]map[string]string, 0, len(records)-1)
	for _, rec := range records[1:] {
		row := make(map[string]string, len(rec))
		for i, col := range records[0] {
			row[col] = rec[i]
		}
		rows = append(rows, row)
	}
	return rows
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("reference value %q: %v", s, err)
	}
	return v
}

// unitOfLastDecimal is 10^−d for a number published with d decimals: a
// published value that was rounded is within half of it, one that was
// truncated within all of it.
func unitOfLastDecimal(published string) float64 {
	_, frac, found := strings.Cut(published, ".")
	if !found {
		return 1
	}
	return math.Pow(10, -float64(len(frac)))
}

// within reports whether got matches a published value to the precision it
// was published with: half a unit of its last decimal when the source
// rounds, a whole unit when it may truncate. The 1e-12 absorbs the binary
// representation of the published decimal itself.
func within(got float64, published float64, publishedText string, truncated bool) bool {
	tol := unitOfLastDecimal(publishedText)
	if !truncated {
		tol /= 2
	}
	return math.Abs(got-published) <= tol+1e-12
}

// ohlcBars dates rows on consecutive calendar days from 2026-01-05; the
// indicators only care about order.
func ohlcBars(open, high, low, closes []float64) []marketdata.Bar {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	out := make([]marketdata.Bar, len(closes))
	for i := range closes {
		out[i] = marketdata.Bar{Date: start.AddDate(0, 0, i).Format(time.DateOnly),
			Open: open[i], High: high[i], Low: low[i], Close: closes[i]}
	}
	return out
}

// stockChartsATR is StockCharts ChartSchool's ATR worked example (cs-atr.xls,
// QQQ, 2010-04-01 … 2010-05-13).
type stockChartsATR struct {
	bars []marketdata.Bar
	tr   []string // published true range of each bar, as text
	atr  []string // published ATR(14); "" before the first (row 13)
}

func loadStockChartsATR(t *testing.T) stockChartsATR {
	t.Helper()
	var ref stockChartsATR
	for _, r := range readTable(t, "stockcharts_atr.csv") {
		c := num(t, r["close"])
		ref.bars = append(ref.bars, marketdata.Bar{Date: r["date"],
			Open: c, High: num(t, r["high"]), Low: num(t, r["low"]), Close: c})
		ref.tr = append(ref.tr, r["tr"])
		ref.atr = append(ref.atr, r["atr"])
	}
	if err := marketdata.Validate(ref.bars); err != nil {
		t.Fatal(err)
	}
	return ref
}

// Every true range StockCharts publishes from the second bar on (the first
// has no previous close). ATR with period 1 over a bar and its predecessor
// is exactly that bar's true range (the seed is the mean of one TR). The
// table has both kinds of gap: on 2010-05-04 the whole bar lies below the
// previous close 49.93, so prevClose − low = 1.85 beats high − low = 1.24;
// on 2010-05-10 it lies above the previous close 45.41, so high − prevClose
// = 2.39 beats high − low = 0.49; on 2010-05-06 the range itself (6.7701)
// is the widest.
func TestTrueRangeStockCharts(t *testing.T) {
	ref := loadStockChartsATR(t)
	for i := 1; i < len(ref.bars); i++ {
		got, ok := indicators.ATR(ref.bars[i-1:i+1], 1)
		want := num(t, ref.tr[i])
		// TR is a difference of prices with at most four decimals, exact in
		// the spreadsheet; the file rounds away its binary noise.
		if !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: TR = %v (ok %v), StockCharts publishes %s", ref.bars[i].Date, got, ok, ref.tr[i])
		}
	}
}

// StockCharts' ATR column. StockCharts counts the first bar's high − low as
// a true range and seeds with the mean of the true ranges of bars 0…13;
// TA-Lib's convention, followed here, needs a previous close for every true
// range and seeds with bars 1…14. Putting one bar before the table whose
// close (48.16) lies inside the first bar's range [47.79, 48.70] makes that
// first true range high − low = 0.91, so TA-Lib's convention over the
// extended series reproduces StockCharts' column value for value. This checks
// the true ranges (gaps included) and Wilder's recursion against the
// published spreadsheet; the seeding itself is checked against TA-Lib below.
func TestATRStockChartsReference(t *testing.T) {
	ref := loadStockChartsATR(t)
	first := ref.bars[0]
	extra := marketdata.Bar{Date: "2010-03-31", Open: 48.16, High: 48.16, Low: 48.16, Close: 48.16}
	if extra.Close < first.Low || extra.Close > first.High {
		t.Fatal("the added bar's close must lie inside the first bar's range")
	}
	ext := append([]marketdata.Bar{extra}, ref.bars...)
	checked := 0
	for i, published := range ref.atr {
		got, ok := indicators.ATR(ext[:i+2], indicators.ATRPeriod)
		if published == "" {
			if ok {
				t.Errorf("%s: ATR = %v, StockCharts has none yet", ref.bars[i].Date, got)
			}
			continue
		}
		if !ok || !within(got, num(t, published), published, false) {
			t.Errorf("%s: ATR(14) = %.10f (ok %v), StockCharts publishes %s", ref.bars[i].Date, got, ok, published)
		}
		checked++
	}
	if checked != 17 {
		t.Errorf("checked %d ATR values, the table has 17", checked)
	}
}

// talibHistory is TA-Lib's 252-bar regression history (test_data.c).
func talibHistory(t *testing.T) (bars []marketdata.Bar, closes []float64) {
	t.Helper()
	var o, h, l, c []float64
	for _, r := range readTable(t, "talib_daily_ref.csv") {
		o, h, l, c = append(o, num(t, r["open"])), append(h, num(t, r["high"])), append(l, num(t, r["low"])), append(c, num(t, r["close"]))
	}
	if len(c) != 252 {
		t.Fatalf("TA-Lib history: %d bars, want 252", len(c))
	}
	return ohlcBars(o, h, l, c), c
}

// talibValue is one value TA-Lib's regression tests expect at an absolute bar
// index, as written there. TA-Lib writes 2 to 4 decimals and truncates in
// places (ATR at bar 16 is 3.5599…, written 3.55); its own checker accepts
// ±0.01. These tests allow one unit of the last written decimal.
type talibValue struct {
	bar  int
	want string
}

// TA-Lib test_trange.c: TRANGE (out index k is bar k+1) and ATR with period
// 14, unstable period 0 (out index k is bar k+14).
var (
	talibTRange = []talibValue{{1, "3.535"}, {13, "9.685"}, {41, "5.125"}, {251, "2.88"}}
	talibATR14  = []talibValue{{14, "3.578"}, {15, "3.4876"}, {16, "3.55"}, {26, "3.245"}, {27, "3.394"}, {28, "3.413"}, {251, "3.26"}}
	// TA-Lib test_mom.c: ROC = ((price/prevPrice)−1)×100 with period 14
	// (out index k is bar k+14; the "middle of data" rows start at bar 20).
	talibROC14 = []talibValue{{14, "-0.546"}, {15, "-2.109"}, {16, "-5.53"}, {20, "-4.49"}, {21, "-5.5256"}, {251, "-1.0367"}}
)

func TestATRTALibReference(t *testing.T) {
	bars, _ := talibHistory(t)
	for _, v := range talibTRange {
		got, ok := indicators.ATR(bars[v.bar-1:v.bar+1], 1)
		if !ok || !within(got, num(t, v.want), v.want, true) {
			t.Errorf("TR at bar %d = %v (ok %v), TA-Lib expects %s", v.bar, got, ok, v.want)
		}
	}
	for _, v := range talibATR14 {
		got, ok := indicators.ATR(bars[:v.bar+1], indicators.ATRPeriod)
		if !ok || !within(got, num(t, v.want), v.want, true) {
			t.Errorf("ATR(14) at bar %d = %.6f (ok %v), TA-Lib expects %s", v.bar, got, ok, v.want)
		}
	}
	// TA-Lib's first ATR(14) is at bar 14 (TA_ATR_Lookback(14) = 14): 15 bars.
	if got, ok := indicators.ATR(bars[:14], indicators.ATRPeriod); ok {
		t.Errorf("ATR(14) of 14 bars = %v, TA-Lib has none", got)
	}
}

func TestReturnPctTALibReference(t *testing.T) {
	_, closes := talibHistory(t)
	for _, v := range talibROC14 {
		got, ok := indicators.ReturnPct(closes[:v.bar+1], 14)
		if !ok || !within(got, num(t, v.want), v.want, true) {
			t.Errorf("ROC(14) at bar %d = %.6f (ok %v), TA-Lib expects %s", v.bar, got, ok, v.want)
		}
	}
	if got, ok := indicators.ReturnPct(closes[:14], 14); ok {
		t.Errorf("ROC(14) of 14 closes = %v, TA-Lib has none", got)
	}
}

// Compute on TA-Lib's whole history. ATR is TA-Lib's last value. The other
// numbers come from the data by inspection and hand arithmetic: the highest
// high is 139.19 (bar 131), the lowest low 80.875 (bar 25); the last close
// 107.87 against 103.42 twenty-one bars earlier (bar 230) is
// 100 × (107.87/103.42 − 1) = +4.3028 %, against 117.75 at bar 188 it is
// −8.3907 %; 252 bars are one too few for a 12-month return.
func TestComputeTALibHistory(t *testing.T) {
	bars, closes := talibHistory(t)
	s, err := indicators.Compute(bars)
	if err != nil {
		t.Fatal(err)
	}
	if s.ATR == nil || !within(*s.ATR, 3.26, "3.26", true) {
		t.Errorf("ATR = %v, TA-Lib expects 3.26", s.ATR)
	}
	if s.High52W == nil || *s.High52W != 139.19 || s.Low52W == nil || *s.Low52W != 80.875 {
		t.Errorf("52-week high %v low %v, want 139.19 and 80.875", s.High52W, s.Low52W)
	}
	if want := 100 * (107.87/103.42 - 1); s.Return1MPct == nil || math.Abs(*s.Return1MPct-want) > 1e-12 || math.Abs(want-4.3028) > 5e-5 {
		t.Errorf("1M return %v, want %v", s.Return1MPct, want)
	}
	if want := 100 * (107.87/117.75 - 1); s.Return3MPct == nil || math.Abs(*s.Return3MPct-want) > 1e-12 || math.Abs(want+8.3907) > 5e-5 {
		t.Errorf("3M return %v, want %v", s.Return3MPct, want)
	}
	if s.Return12MPct != nil {
		t.Errorf("12M return %v from 252 bars, want nil (needs 253)", *s.Return12MPct)
	}
	if want, _ := indicators.SMA(closes, 200); s.MA200 == nil || *s.MA200 != want {
		t.Errorf("MA200 %v, want %v", s.MA200, want)
	}
}

// Hull, "Options, Futures, and Other Derivatives", Table 15.1 (global
// edition numbering): 21 daily closes give 20 log returns with Σu = 0.09531
// and Σu² = 0.00326, so s = √(0.00326/19 − 0.09531²/380) = 0.01216 per day,
// and 0.01216 × √252 = 0.193, 19.3 % a year. The population form would give
// 18.8 %, so the table tells the two apart.
func TestVolatilityHullReference(t *testing.T) {
	var closes []float64
	for _, r := range readTable(t, "hull_volatility.csv") {
		closes = append(closes, num(t, r["close"]))
	}
	if len(closes) != 21 {
		t.Fatalf("Hull's table: %d closes, want 21", len(closes))
	}
	got, ok := indicators.VolatilityPct(closes, 20)
	if !ok {
		t.Fatal("VolatilityPct of 21 closes: not ok")
	}
	if daily := got / 100 / math.Sqrt(252); !within(daily, 0.01216, "0.01216", false) {
		t.Errorf("daily s = %.6f, Hull publishes 0.01216", daily)
	}
	if !within(got/100, 0.193, "0.193", false) {
		t.Errorf("annual volatility = %.4f %%, Hull publishes 19.3 %%", got)
	}
	s, err := indicators.Compute(bars(closes))
	if err != nil {
		t.Fatal(err)
	}
	if s.Volatility20DPct == nil || *s.Volatility20DPct != got {
		t.Errorf("Compute: volatility %v, want %v", s.Volatility20DPct, got)
	}
	if s, _ := indicators.Compute(bars(closes[1:])); s.Volatility20DPct != nil {
		t.Errorf("20 closes: volatility %v, want nil", *s.Volatility20DPct)
	}
}
