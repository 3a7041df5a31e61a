package indicators

// Unit says how to read and format a Field's number.
type Unit string

const (
	// UnitPrice is the quote currency of the bars, like Snapshot.Price.
	UnitPrice Unit = "price"
	// UnitPercent is a percentage: 5.2 means 5.2 %, −1.5 means −1.5 %.
	UnitPercent Unit = "pct"
	// UnitIndex is a dimensionless reading on a 0–100 scale (RSI).
	UnitIndex Unit = "index"
)

// Field describes one optional number of a Snapshot. Fields lists them all,
// so the row store (tickerdb) and the CLI's tables are written once against
// it: adding an indicator adds a Snapshot field and an entry here. For the
// analysis model to see it too, docs/architecture.md ("Where to change
// what") lists the files of that path.
type Field struct {
	// Name is the stable machine name: the stored attribute name and the JSON
	// key, lowerCamelCase. Renaming one orphans every stored row.
	Name string
	// Label is a short column header, such as "RSI(14)" or "52W HIGH".
	Label string
	// Unit says how to read the number.
	Unit Unit
	// Bars is the fewest bars for which Compute sets the number; with fewer
	// it is absent (nil), never zero.
	Bars int
	// Doc is a one-line definition.
	Doc string
	// Get returns the number in s; nil when it is absent.
	Get func(s Snapshot) *float64
	// Set stores v in s, as a fresh pointer (to read a row back).
	Set func(s *Snapshot, v float64)
}

// Fields lists every optional number of a Snapshot once, in display order.
// The first two keep the stored names "rsi" and "ma50" of the row contract.
// Callers must not modify it.
var Fields = []Field{
	{
		Name: "rsi", Label: "RSI(14)", Unit: UnitIndex, Bars: RSIPeriod + 1,
		Doc: "Relative Strength Index over 14 closes, Wilder smoothing (TA-Lib, StockCharts)",
		Get: func(s Snapshot) *float64 { return s.RSI },
		Set: func(s *Snapshot, v float64) { s.RSI = &v },
	},
	{
		Name: "ma50", Label: "MA50", Unit: UnitPrice, Bars: MAPeriod,
		Doc: "simple mean of the last 50 closes",
		Get: func(s Snapshot) *float64 { return s.MA50 },
		Set: func(s *Snapshot, v float64) { s.MA50 = &v },
	},
	{
		Name: "ma200", Label: "MA200", Unit: UnitPrice, Bars: LongMAPeriod,
		Doc: "simple mean of the last 200 closes",
		Get: func(s Snapshot) *float64 { return s.MA200 },
		Set: func(s *Snapshot, v float64) { s.MA200 = &v },
	},
	{
		Name: "high52w", Label: "52W HIGH", Unit: UnitPrice, Bars: RangeSessions,
		Doc: "highest high of the last 252 sessions",
		Get: func(s Snapshot) *float64 { return s.High52W },
		Set: func(s *Snapshot, v float64) { s.High52W = &v },
	},
	{
		Name: "low52w", Label: "52W LOW", Unit: UnitPrice, Bars: RangeSessions,
		Doc: "lowest low of the last 252 sessions",
		Get: func(s Snapshot) *float64 { return s.Low52W },
		Set: func(s *Snapshot, v float64) { s.Low52W = &v },
	},
	{
		Name: "return1mPct", Label: "1M %", Unit: UnitPercent, Bars: Sessions1M + 1,
		Doc: "last close versus the close 21 sessions earlier, percent",
		Get: func(s Snapshot) *float64 { return s.Return1MPct },
		Set: func(s *Snapshot, v float64) { s.Return1MPct = &v },
	},
	{
		Name: "return3mPct", Label: "3M %", Unit: UnitPercent, Bars: Sessions3M + 1,
		Doc: "last close versus the close 63 sessions earlier, percent",
		Get: func(s Snapshot) *float64 { return s.Return3MPct },
		Set: func(s *Snapshot, v float64) { s.Return3MPct = &v },
	},
	{
		Name: "return12mPct", Label: "12M %", Unit: UnitPercent, Bars: Sessions12M + 1,
		Doc: "last close versus the close 252 sessions earlier, percent",
		Get: func(s Snapshot) *float64 { return s.Return12MPct },
		Set: func(s *Snapshot, v float64) { s.Return12MPct = &v },
	},
	{
		Name: "volatility20dPct", Label: "VOL 20D", Unit: UnitPercent, Bars: VolatilityReturns + 1,
		Doc: "sample standard deviation of the last 20 daily log returns × √252, percent",
		Get: func(s Snapshot) *float64 { return s.Volatility20DPct },
		Set: func(s *Snapshot, v float64) { s.Volatility20DPct = &v },
	},
	{
		Name: "atr", Label: "ATR(14)", Unit: UnitPrice, Bars: ATRPeriod + 1,
		Doc: "Average True Range over 14 bars, Wilder smoothing seeded as TA-Lib does",
		Get: func(s Snapshot) *float64 { return s.ATR },
		Set: func(s *Snapshot, v float64) { s.ATR = &v },
	},
}
