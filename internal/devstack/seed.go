package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/symbol"
)

// The sample portfolio that local runs seed into the shared tables.
const (
	SamplePortfolio   = deploy.DefaultPortfolio
	samplePortfolioID = "zsm-seven"
	sampleUserID      = "local-sample-user"
)

// SampleSymbols are the holdings of the sample portfolio.
var SampleSymbols = []string{"AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA"}

// SeedSamplePortfolio writes the sample portfolio into the stage's shared
// tables, in the documented shape of portfolio-api's items (a portfolio item
// with userId, portfolioId and name; one position item per symbol with
// portfolioId, positionId, ticker and quantity), unless a portfolio of that
// name exists. It reports whether it wrote anything.
func SeedSamplePortfolio(ctx context.Context, db *dynamodb.Client, stage string) (bool, error) {
	pfTable, posTable := deploy.UserPortfolios.Name(stage), deploy.PortfolioPositions.Name(stage)
	existing, err := portfoliodb.NewReader(db, pfTable, posTable).List(ctx)
	if err != nil {
		return false, fmt.Errorf("seed: %w", err)
	}
	for _, p := range existing {
		if p.Name == SamplePortfolio {
			return false, nil
		}
	}
	put := func(table string, item map[string]types.AttributeValue) error {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			return fmt.Errorf("seed %s: %w", table, err)
		}
		return nil
	}
	for _, sym := range SampleSymbols {
		if err := put(posTable, map[string]types.AttributeValue{
			"portfolioId": &types.AttributeValueMemberS{Value: samplePortfolioID},
			"positionId":  &types.AttributeValueMemberS{Value: sym},
			"ticker":      &types.AttributeValueMemberS{Value: sym},
			"quantity":    &types.AttributeValueMemberN{Value: strconv.Itoa(10)},
		}); err != nil {
			return false, err
		}
	}
	// The portfolio item last: a run interrupted half-way seeds again.
	if err := put(pfTable, map[string]types.AttributeValue{
		"userId":      &types.AttributeValueMemberS{Value: sampleUserID},
		"portfolioId": &types.AttributeValueMemberS{Value: samplePortfolioID},
		"name":        &types.AttributeValueMemberS{Value: SamplePortfolio},
	}); err != nil {
		return false, err
	}
	return true, nil
}

// SampleDrift says, when the stage's shared tables already hold a portfolio
// named SamplePortfolio whose symbols are not SampleSymbols, what it holds:
// SeedSamplePortfolio writes the sample only when it is absent, so a store
// kept between runs (.local/dynalite) keeps the holdings it was first
// seeded with after SampleSymbols changes. "" when they agree, or when
// there is no such portfolio.
func SampleDrift(ctx context.Context, db *dynamodb.Client, stage string) (string, error) {
	r := portfoliodb.NewReader(db, deploy.UserPortfolios.Name(stage), deploy.PortfolioPositions.Name(stage))
	_, pos, _, err := r.Holdings(ctx, SamplePortfolio)
	if errors.Is(err, portfoliodb.ErrUnknownPortfolio) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sample portfolio: %w", err)
	}
	held := make([]string, 0, len(pos))
	for _, p := range pos {
		held = append(held, p.Symbol)
	}
	want := slices.Clone(SampleSymbols)
	slices.Sort(held)
	slices.Sort(want)
	if slices.Equal(held, want) {
		return "", nil
	}
	return fmt.Sprintf("the stored %q holds %s, not the built-in sample's %s: a kept store is seeded only once",
		SamplePortfolio, strings.Join(held, ","), strings.Join(want, ",")), nil
}

// SeedPortfolio is one portfolio of a seed file (`zsm run --seed FILE`):
//
//	{"portfolios":[{"name":"ZSM Seven","positions":[{"ticker":"AAPL","quantity":10,"costBasis":1502.50}]}]}
//
// quantity and costBasis are optional; costBasis is the position's total
// cost in USD. Tickers are normalized (package symbol).
type SeedPortfolio struct {
	Name      string
	Positions []SeedPosition
}

// SeedPosition is one position of a SeedPortfolio.
type SeedPosition struct {
	Ticker              string
	Quantity, CostBasis *float64
}

// MaxSeedBytes bounds a seed file.
const MaxSeedBytes = 10 << 20

// ParseSeed validates a whole seed file before anything is written: an
// object with a non-empty "portfolios" list; each portfolio a unique,
// non-empty name and a non-empty "positions" list; each position a ticker
// the validator accepts (normalized: "brk-b" becomes "BRK.B") and, when
// given, a quantity and costBasis that are finite numbers ≥ 0. Unknown
// fields are refused. The error is one line naming the entry, e.g.
// `portfolios[1].positions[0].ticker "BRK-": trailing separator`.
func ParseSeed(data []byte) ([]SeedPortfolio, error) {
	if len(data) > MaxSeedBytes {
		return nil, fmt.Errorf("%d bytes, more than %d", len(data), MaxSeedBytes)
	}
	var file struct {
		Portfolios []json.RawMessage `json:"portfolios"`
	}
	if err := strictJSON(data, &file); err != nil {
		return nil, fmt.Errorf("not a seed file ({\"portfolios\":[...]}): %s", err)
	}
	if len(file.Portfolios) == 0 {
		return nil, errors.New(`"portfolios" is missing or empty`)
	}
	names := map[string]int{}
	out := make([]SeedPortfolio, 0, len(file.Portfolios))
	for i, raw := range file.Portfolios {
		at := fmt.Sprintf("portfolios[%d]", i)
		var pf struct {
			Name      *string           `json:"name"`
			Positions []json.RawMessage `json:"positions"`
		}
		if err := strictJSON(raw, &pf); err != nil {
			return nil, fmt.Errorf("%s: %s", at, err)
		}
		if pf.Name == nil || strings.TrimSpace(*pf.Name) == "" {
			return nil, fmt.Errorf("%s.name: missing or empty", at)
		}
		// The analysis's own rule (length, control and line-separator
		// characters): a name it would refuse is refused here, before
		// anything is written.
		name, err := analysis.ValidatePortfolioName(*pf.Name)
		if err != nil {
			return nil, fmt.Errorf("%s.name: %v", at, err)
		}
		if j, dup := names[name]; dup {
			return nil, fmt.Errorf("%s.name %s: the same name as portfolios[%d]", at, symbol.Quote(name), j)
		}
		names[name] = i
		if len(pf.Positions) == 0 {
			return nil, fmt.Errorf("%s.positions: missing or empty", at)
		}
		p := SeedPortfolio{Name: name}
		for j, rawPos := range pf.Positions {
			pat := fmt.Sprintf("%s.positions[%d]", at, j)
			var pos struct {
				Ticker    *string          `json:"ticker"`
				Quantity  *json.RawMessage `json:"quantity"`
				CostBasis *json.RawMessage `json:"costBasis"`
			}
			if err := strictJSON(rawPos, &pos); err != nil {
				return nil, fmt.Errorf("%s: %s", pat, err)
			}
			if pos.Ticker == nil {
				return nil, fmt.Errorf("%s.ticker: missing", pat)
			}
			t, err := symbol.Normalize(*pos.Ticker)
			if err != nil {
				return nil, fmt.Errorf("%s.ticker %s: %s", pat, symbol.Quote(*pos.Ticker), symbol.Reason(err))
			}
			sp := SeedPosition{Ticker: t}
			for _, field := range []struct {
				name string
				raw  *json.RawMessage
				dst  **float64
			}{{"quantity", pos.Quantity, &sp.Quantity}, {"costBasis", pos.CostBasis, &sp.CostBasis}} {
				name := field.name
				if field.raw == nil || string(*field.raw) == "null" {
					continue
				}
				var v float64
				if err := json.Unmarshal(*field.raw, &v); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
					return nil, fmt.Errorf("%s.%s: not a number", pat, name)
				}
				if v < 0 {
					return nil, fmt.Errorf("%s.%s %v: negative", pat, name, v)
				}
				*field.dst = &v
			}
			p.Positions = append(p.Positions, sp)
		}
		out = append(out, p)
	}
	return out, nil
}

// strictJSON decodes one JSON value into v, refusing unknown fields and
// trailing data; the error is short and on one line.
func strictJSON(data []byte, v any) error {
	err := queue.DecodeObject(data, v)
	if err == nil || errors.Is(err, queue.ErrTrailingData) {
		return err
	}
	return errors.New(strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "json: ")), " "))
}

// seedUserID owns the portfolios a seed file writes.
const seedUserID = "local-seed-user"

// ReplacePortfolios replaces every portfolio and position of the stage's
// shared tables with portfolios (validated by ParseSeed), in the documented
// shape SeedSamplePortfolio writes: a portfolio item (userId, portfolioId,
// name) and one position item per position (portfolioId, positionId,
// ticker, and quantity and costBasis when given). For the local stack only:
// the shared tables of a deployed stage are portfolio-api's.
func ReplacePortfolios(ctx context.Context, db *dynamodb.Client, stage string, portfolios []SeedPortfolio) error {
	pfTable, posTable := deploy.UserPortfolios.Name(stage), deploy.PortfolioPositions.Name(stage)
	for _, spec := range []deploy.Table{deploy.UserPortfolios, deploy.PortfolioPositions} {
		if err := deleteAll(ctx, db, spec, stage); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	var posItems, pfItems []map[string]types.AttributeValue
	for i, p := range portfolios {
		id := fmt.Sprintf("seed-%d", i+1)
		for j, pos := range p.Positions {
			it := map[string]types.AttributeValue{
				"portfolioId": &types.AttributeValueMemberS{Value: id},
				"positionId":  &types.AttributeValueMemberS{Value: strconv.Itoa(j + 1)},
				"ticker":      &types.AttributeValueMemberS{Value: pos.Ticker},
			}
			if pos.Quantity != nil {
				it["quantity"] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(*pos.Quantity, 'f', -1, 64)}
			}
			if pos.CostBasis != nil {
				it["costBasis"] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(*pos.CostBasis, 'f', -1, 64)}
			}
			posItems = append(posItems, it)
		}
		pfItems = append(pfItems, map[string]types.AttributeValue{
			"userId":      &types.AttributeValueMemberS{Value: seedUserID},
			"portfolioId": &types.AttributeValueMemberS{Value: id},
			"name":        &types.AttributeValueMemberS{Value: p.Name},
		})
	}
	// Positions first, portfolios last: an interrupted seed has no
	// portfolio pointing at missing positions.
	if err := batchPut(ctx, db, posTable, posItems); err != nil {
		return err
	}
	return batchPut(ctx, db, pfTable, pfItems)
}

// deleteAll deletes every item of a local table.
func deleteAll(ctx context.Context, db *dynamodb.Client, spec deploy.Table, stage string) error {
	table := spec.Name(stage)
	keys := []string{spec.PartitionKey.Name}
	if spec.SortKey != nil {
		keys = append(keys, spec.SortKey.Name)
	}
	names := map[string]string{}
	var proj []string
	for i, k := range keys {
		ph := "#k" + strconv.Itoa(i)
		names[ph] = k
		proj = append(proj, ph)
	}
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table),
		ProjectionExpression: aws.String(strings.Join(proj, ", ")), ExpressionAttributeNames: names})
	var reqs []types.WriteRequest
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("scan %s: %w", table, err)
		}
		for _, it := range out.Items {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: it}})
		}
	}
	return batchWrite(ctx, db, table, reqs)
}

func batchPut(ctx context.Context, db *dynamodb.Client, table string, items []map[string]types.AttributeValue) error {
	reqs := make([]types.WriteRequest, len(items))
	for i, it := range items {
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
	}
	return batchWrite(ctx, db, table, reqs)
}

// batchWrite sends reqs 25 at a time, re-sending unprocessed items.
func batchWrite(ctx context.Context, db *dynamodb.Client, table string, reqs []types.WriteRequest) error {
	for start := 0; start < len(reqs); start += 25 {
		pending := map[string][]types.WriteRequest{table: reqs[start:min(start+25, len(reqs))]}
		for tries := 0; len(pending[table]) > 0; tries++ {
			if tries == 10 {
				return fmt.Errorf("seed %s: items left unprocessed", table)
			}
			out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return fmt.Errorf("seed %s: %w", table, err)
			}
			pending = out.UnprocessedItems
		}
	}
	return nil
}
