// Package portfoliodb reads the shared tables owned by portfolio-api,
// user-portfolios-{stage} and portfolio-positions-{stage}. It never writes
// them. Their schema is not ours, so the reader is tolerant, and its one
// assumption about their shape is written down here:
//
//   - a position carries its symbol in "ticker" (or "symbol") and its
//     portfolio in "portfolioId" (or "portfolio"), and may carry "quantity"
//     and "costBasis" as numbers (or numeric strings);
//   - a portfolio carries "name" and "portfolioId", and may carry a
//     "tickers" (or "symbols") list or string set.
//
// Every symbol goes through package symbol; items that do not fit are
// reported with their key, never silently dropped.
package portfoliodb

// Portfolio is one item of user-portfolios.
type Portfolio struct {
	ID   string
	Name string
	// Symbols listed on the portfolio item itself (normalized, valid).
	Symbols []string
}

// Position is one holding of a portfolio (from portfolio-positions, or a
// symbol listed on the portfolio item, in which case Quantity and CostBasis
// are nil).
type Position struct {
	Symbol    string
	Quantity  *float64
	CostBasis *float64
}

// Invalid is a symbol (or item) that was rejected, with where it came from.
type Invalid struct {
	// Table and Key identify the item, e.g. "portfolio-positions-dev", "portfolioId=p1 positionId=x".
	Table string
	Key   string
	// Value is the raw value found (quoted safely when logged).
	Value string
	// Reason is the validator's one-line error.
	Reason string
}
