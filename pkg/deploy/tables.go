package deploy

// AttrType is a DynamoDB scalar key attribute type.
type AttrType string

// Key attribute types used by the tables of this service.
const (
	String AttrType = "S"
	Number AttrType = "N"
)

// Key is one key attribute of a table.
type Key struct {
	Name string
	Type AttrType
}

// Table describes a table: its base name (the stage is appended) and keys.
type Table struct {
	// Base is the name without the stage suffix, e.g. "ticker-data".
	Base string
	// PartitionKey is the HASH key.
	PartitionKey Key
	// SortKey is the RANGE key; nil for a table without one.
	SortKey *Key
	// TTLAttribute, when set, names the Number attribute (Unix seconds) after
	// which DynamoDB deletes an item some time later. The local stack does not
	// expire items (dynalite has no TTL); the stack enables it.
	TTLAttribute string
	// Shared tables belong to another service (portfolio-api): this stack
	// imports them by name and never creates or writes them. Local runs and
	// tests create them with the documented shape.
	Shared bool
}

// Name returns the physical table name for a stage, e.g. "ticker-data-dev".
func (s Table) Name(stage string) string { return s.Base + "-" + stage }

// Attribute names of the ticker-data table (see docs/ and architecture.md).
const (
	AttrTicker    = "ticker"    // HASH: upper-case symbol
	AttrTimestamp = "timestamp" // RANGE: RFC 3339 UTC instant
	AttrPortfolio = "portfolio" // HASH of portfolio-analyses
	AttrDate      = "date"      // RANGE of daily-bars: a prefixed key (pkg/bardb: "b#YYYY-MM-DD" a bar, "l#…" an adjustment, "r#" a record, …)
	AttrExpiresAt = "expiresAt" // TTL of daily-bars and analysis-reservations: Unix seconds
)

// TickerData holds one item per ticker and trading day: the sort key is the
// RFC 3339 UTC instant of that day's 16:00 New York close, so a retry on the
// same trading day overwrites instead of duplicating.
var TickerData = Table{
	Base:         "ticker-data",
	PartitionKey: Key{Name: AttrTicker, Type: String},
	SortKey:      &Key{Name: AttrTimestamp, Type: String},
}

// DailyBars holds the stored daily history: the market as printed, one item
// per ticker and session (sort key "b#YYYY-MM-DD"), expiring 400 days after
// its date, the splits ledger, and what the store covers of the market,
// under prefixed sort keys: see pkg/bardb and
// docs/decisions/0004-raw-bars-and-a-ledger.md.
var DailyBars = Table{
	Base:         "daily-bars",
	PartitionKey: Key{Name: AttrTicker, Type: String},
	SortKey:      &Key{Name: AttrDate, Type: String},
	TTLAttribute: AttrExpiresAt,
}

// PortfolioAnalyses holds one item per analysis run of a portfolio.
var PortfolioAnalyses = Table{
	Base:         "portfolio-analyses",
	PartitionKey: Key{Name: AttrPortfolio, Type: String},
	SortKey:      &Key{Name: AttrTimestamp, Type: String},
}

// Attribute names of the analysis-reservations table.
const (
	AttrReservationKey = "key" // HASH: hex SHA-256 of what an analysis is of
)

// AnalysisReservations holds one item per analysis key (portfolio, data
// date, prompt version and SHA-256, model, input hash), written with a
// conditional put before the model is paid, so that overlapping runs and
// redelivered messages pay once. Items expire (TTL) a week after their data
// date is of interest. A table of its own, so that no query of
// portfolio-analyses can ever return a reservation.
var AnalysisReservations = Table{
	Base:         "analysis-reservations",
	PartitionKey: Key{Name: AttrReservationKey, Type: String},
	TTLAttribute: AttrExpiresAt,
}

// UserPortfolios is owned by portfolio-api. Its real key schema is not ours;
// the reader only scans it. The keys below are the documented shape that local
// runs and tests create: items carry "name" and may carry a "tickers" or
// "symbols" list or string set.
var UserPortfolios = Table{
	Base:         "user-portfolios",
	PartitionKey: Key{Name: "userId", Type: String},
	SortKey:      &Key{Name: "portfolioId", Type: String},
	Shared:       true,
}

// PortfolioPositions is owned by portfolio-api. Items carry the symbol in
// "ticker" (or "symbol") and the portfolio in "portfolioId" (or "portfolio"),
// and may carry "quantity" and "costBasis".
var PortfolioPositions = Table{
	Base:         "portfolio-positions",
	PartitionKey: Key{Name: "portfolioId", Type: String},
	SortKey:      &Key{Name: "positionId", Type: String},
	Shared:       true,
}

// Tables lists every table of the service, owned and shared.
var Tables = []Table{TickerData, DailyBars, PortfolioAnalyses, AnalysisReservations, UserPortfolios, PortfolioPositions}
