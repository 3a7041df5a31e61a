package portfoliodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/symbol"
)

// ErrUnknownPortfolio means no item of user-portfolios has the requested name.
var ErrUnknownPortfolio = errors.New("unknown portfolio")

// DynamoDBAPI is the one DynamoDB call the reader needs.
type DynamoDBAPI interface {
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// ScanResult is every symbol held in the shared tables.
type ScanResult struct {
	// ItemsScanned counts the items read from both tables.
	ItemsScanned int
	// Pages counts the Scan pages read from both tables.
	Pages int
	// Symbols are the valid symbols, normalized, sorted and unique.
	Symbols []string
	// Invalid lists every rejected symbol (or item without one) with its key.
	Invalid []Invalid
}

// Reader scans the two shared tables. It only reads them.
type Reader struct {
	client     DynamoDBAPI
	portfolios string
	positions  string
	// PageSize caps the items per Scan page (0: DynamoDB's 1 MB pages).
	PageSize int32
}

// NewReader returns a reader of the named tables
// (deploy.UserPortfolios.Name(stage), deploy.PortfolioPositions.Name(stage)).
func NewReader(client DynamoDBAPI, portfoliosTable, positionsTable string) *Reader {
	return &Reader{client: client, portfolios: portfoliosTable, positions: positionsTable}
}

// Attributes each scan projects: the documented shape and the key
// attributes that identify an item in a log line.
var (
	positionSymbolAttrs = []string{
		deploy.PortfolioPositions.PartitionKey.Name, deploy.PortfolioPositions.SortKey.Name, attrTicker, attrSymbol,
	}
	positionAttrs  = append(slices.Clone(positionSymbolAttrs), attrPortfolio, attrQuantity, attrCostBasis)
	portfolioAttrs = []string{
		deploy.UserPortfolios.PartitionKey.Name, deploy.UserPortfolios.SortKey.Name, attrName, attrTickers, attrSymbols,
	}
)

// ScanSymbols reads both tables in full and returns their symbols.
func (r *Reader) ScanSymbols(ctx context.Context) (ScanResult, error) {
	var res ScanResult
	set := map[string]bool{}
	pages, n, err := r.scan(ctx, r.portfolios, portfolioAttrs, nil, func(item map[string]types.AttributeValue) {
		p := parsePortfolio(r.portfolios, item)
		for _, s := range p.Portfolio.Symbols {
			set[s] = true
		}
		res.Invalid = append(res.Invalid, p.Invalid...)
	})
	res.Pages += pages
	res.ItemsScanned += n
	if err != nil {
		return res, err
	}
	pages, n, err = r.scan(ctx, r.positions, positionSymbolAttrs, nil, func(item map[string]types.AttributeValue) {
		p := parsePosition(r.positions, item)
		if p.Position != nil {
			set[p.Position.Symbol] = true
		}
		// Quantities are not projected here, so Invalid holds symbol
		// problems only.
		res.Invalid = append(res.Invalid, p.Invalid...)
	})
	res.Pages += pages
	res.ItemsScanned += n
	if err != nil {
		return res, err
	}
	res.Symbols = make([]string, 0, len(set))
	for s := range set {
		res.Symbols = append(res.Symbols, s)
	}
	slices.Sort(res.Symbols)
	return res, nil
}

// List returns every portfolio of user-portfolios, sorted by name then id,
// with the valid symbols listed on each.
func (r *Reader) List(ctx context.Context) ([]Portfolio, error) {
	var out []Portfolio
	_, _, err := r.scan(ctx, r.portfolios, portfolioAttrs, nil, func(item map[string]types.AttributeValue) {
		out = append(out, parsePortfolio(r.portfolios, item).Portfolio)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Portfolio) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Holdings returns the portfolio called name and its positions: the items of
// portfolio-positions whose portfolioId equals its portfolioId or whose
// portfolio equals its name, plus the symbols listed on the portfolio item
// that no position covers (with nil quantity and cost basis). Positions are
// sorted by symbol. When several portfolios share the name, the one with the
// smallest portfolioId is used. No portfolio of that name wraps
// ErrUnknownPortfolio.
func (r *Reader) Holdings(ctx context.Context, name string) (Portfolio, []Position, []Invalid, error) {
	var (
		found   bool
		pf      Portfolio
		invalid []Invalid
	)
	_, _, err := r.scan(ctx, r.portfolios, portfolioAttrs, nil, func(item map[string]types.AttributeValue) {
		p := parsePortfolio(r.portfolios, item)
		if p.Portfolio.Name != name {
			return
		}
		if !found || p.Portfolio.ID < pf.ID {
			found, pf, invalid = true, p.Portfolio, p.Invalid
		}
	})
	if err != nil {
		return Portfolio{}, nil, nil, err
	}
	if !found {
		return Portfolio{}, nil, nil, fmt.Errorf("%w %s", ErrUnknownPortfolio, symbol.Quote(name))
	}

	// Filter server-side so only matching items cross the network; the scan
	// still reads the whole table.
	f := &filter{expr: "#pf = :name", values: map[string]types.AttributeValue{":name": &types.AttributeValueMemberS{Value: name}}}
	if pf.ID != "" {
		f.expr = "#pid = :id OR " + f.expr
		f.values[":id"] = &types.AttributeValueMemberS{Value: pf.ID}
	}
	var positions []Position
	held := map[string]bool{}
	_, _, err = r.scan(ctx, r.positions, positionAttrs, f, func(item map[string]types.AttributeValue) {
		p := parsePosition(r.positions, item)
		// The filter already matched; check again so a fake or a changed
		// filter cannot mix portfolios.
		if !(pf.ID != "" && p.PortfolioID == pf.ID) && p.PortfolioName != name {
			return
		}
		invalid = append(invalid, p.Invalid...)
		if p.Position != nil {
			positions = append(positions, *p.Position)
			held[p.Position.Symbol] = true
		}
	})
	if err != nil {
		return Portfolio{}, nil, nil, err
	}
	for _, s := range pf.Symbols {
		if !held[s] {
			positions = append(positions, Position{Symbol: s})
		}
	}
	slices.SortStableFunc(positions, func(a, b Position) int { return strings.Compare(a.Symbol, b.Symbol) })
	return pf, positions, invalid, nil
}

// filter is a FilterExpression whose "#pid" and "#pf" name the position
// attributes portfolioId and portfolio.
type filter struct {
	expr   string
	values map[string]types.AttributeValue
}

// scan reads every page of table, projected to attrs, and hands each item to
// fn. It returns the pages and items read.
func (r *Reader) scan(ctx context.Context, table string, attrs []string, f *filter, fn func(map[string]types.AttributeValue)) (pages, items int, err error) {
	names := make(map[string]string, len(attrs)+2)
	proj := make([]string, len(attrs))
	for i, a := range attrs {
		// Placeholders for every name: "name" and others are reserved words.
		ph := "#a" + strconv.Itoa(i)
		names[ph] = a
		proj[i] = ph
	}
	in := &dynamodb.ScanInput{
		TableName:                aws.String(table),
		ProjectionExpression:     aws.String(strings.Join(proj, ", ")),
		ExpressionAttributeNames: names,
	}
	if r.PageSize > 0 {
		in.Limit = aws.Int32(r.PageSize)
	}
	if f != nil {
		in.FilterExpression = aws.String(f.expr)
		in.ExpressionAttributeValues = f.values
		names["#pf"] = attrPortfolio
		if strings.Contains(f.expr, "#pid") {
			names["#pid"] = attrPortfolioID
		}
	}
	p := dynamodb.NewScanPaginator(r.client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return pages, items, fmt.Errorf("scan %s (page %d): %w", table, pages+1, err)
		}
		pages++
		items += int(out.ScannedCount)
		for _, it := range out.Items {
			fn(it)
		}
	}
	return pages, items, nil
}
