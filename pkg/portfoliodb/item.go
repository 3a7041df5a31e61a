package portfoliodb

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/symbol"
)

// Attribute names of the documented shared-table shape (see the package doc).
const (
	attrTicker      = "ticker"
	attrSymbol      = "symbol"
	attrPortfolioID = "portfolioId"
	attrPortfolio   = "portfolio"
	attrQuantity    = "quantity"
	attrCostBasis   = "costBasis"
	attrName        = "name"
	attrTickers     = "tickers"
	attrSymbols     = "symbols"
)

// keyOf describes an item by its key attributes in the documented shape,
// e.g. `portfolioId="p1" positionId="x"`. Missing or non-string keys show as ?.
func keyOf(spec deploy.Table, item map[string]types.AttributeValue) string {
	names := []string{spec.PartitionKey.Name}
	if spec.SortKey != nil {
		names = append(names, spec.SortKey.Name)
	}
	parts := make([]string, 0, len(names))
	for _, n := range names {
		v, ok := item[n].(*types.AttributeValueMemberS)
		if !ok {
			parts = append(parts, n+"=?")
			continue
		}
		parts = append(parts, n+"="+symbol.Quote(v.Value))
	}
	return strings.Join(parts, " ")
}

// stringAttr returns the attribute as a string; present reports whether it
// exists at all (a present non-string is reported by the caller).
func stringAttr(item map[string]types.AttributeValue, name string) (s string, isString, present bool) {
	av, ok := item[name]
	if !ok {
		return "", false, false
	}
	if _, null := av.(*types.AttributeValueMemberNULL); null {
		return "", false, false
	}
	v, ok := av.(*types.AttributeValueMemberS)
	if !ok {
		return "", false, true
	}
	return v.Value, true, true
}

// numberAttr reads a number stored as N or as a numeric string. Absent → nil.
func numberAttr(item map[string]types.AttributeValue, name string) (*float64, error) {
	var raw string
	switch v := item[name].(type) {
	case nil, *types.AttributeValueMemberNULL:
		return nil, nil
	case *types.AttributeValueMemberN:
		raw = v.Value
	case *types.AttributeValueMemberS:
		raw = strings.TrimSpace(v.Value)
	default:
		return nil, fmt.Errorf("%s is a %s, not a number", name, typeName(v))
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%s %s is not a finite number", name, symbol.Quote(raw))
	}
	return &f, nil
}

// typeName is the DynamoDB type letter(s) of an attribute value.
func typeName(av types.AttributeValue) string {
	switch av.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberM:
		return "M"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	}
	return "unknown"
}

// positionItem is one parsed item of portfolio-positions.
type positionItem struct {
	// PortfolioID and PortfolioName are the portfolio it belongs to
	// ("portfolioId" and/or "portfolio").
	PortfolioID, PortfolioName string
	// Position is nil when the item carries no valid symbol.
	Position *Position
	Invalid  []Invalid
}

// parsePosition reads a portfolio-positions item of the documented shape.
func parsePosition(table string, item map[string]types.AttributeValue) positionItem {
	key := keyOf(deploy.PortfolioPositions, item)
	var p positionItem
	bad := func(value, reason string) {
		p.Invalid = append(p.Invalid, Invalid{Table: table, Key: key, Value: value, Reason: reason})
	}
	p.PortfolioID, _, _ = stringAttr(item, attrPortfolioID)
	p.PortfolioName, _, _ = stringAttr(item, attrPortfolio)

	attr := attrTicker
	raw, isString, present := stringAttr(item, attrTicker)
	if !present {
		attr = attrSymbol
		raw, isString, present = stringAttr(item, attrSymbol)
	}
	switch {
	case !present:
		bad("", "no ticker or symbol attribute")
		return p
	case !isString:
		bad("", fmt.Sprintf("%s is a %s, not a string", attr, typeName(item[attr])))
		return p
	}
	sym, err := symbol.Normalize(raw)
	if err != nil {
		bad(raw, err.Error())
		return p
	}
	pos := Position{Symbol: sym}
	if pos.Quantity, err = numberAttr(item, attrQuantity); err != nil {
		bad(raw, err.Error())
	}
	if pos.CostBasis, err = numberAttr(item, attrCostBasis); err != nil {
		bad(raw, err.Error())
	}
	p.Position = &pos
	return p
}

// portfolioItem is one parsed item of user-portfolios.
type portfolioItem struct {
	Portfolio Portfolio
	Invalid   []Invalid
}

// parsePortfolio reads a user-portfolios item of the documented shape. Its
// "tickers" (or "symbols") may be a list of strings, a string set, or one
// string; the valid ones are normalized and de-duplicated in order.
func parsePortfolio(table string, item map[string]types.AttributeValue) portfolioItem {
	key := keyOf(deploy.UserPortfolios, item)
	var p portfolioItem
	bad := func(value, reason string) {
		p.Invalid = append(p.Invalid, Invalid{Table: table, Key: key, Value: value, Reason: reason})
	}
	p.Portfolio.ID, _, _ = stringAttr(item, attrPortfolioID)
	p.Portfolio.Name, _, _ = stringAttr(item, attrName)

	// A NULL "tickers" counts as absent, as a NULL "ticker" does for a
	// position, so a "symbols" beside it is still read.
	attr := attrTickers
	av := item[attrTickers]
	if _, null := av.(*types.AttributeValueMemberNULL); av == nil || null {
		attr, av = attrSymbols, item[attrSymbols]
	}
	var raws []string
	switch v := av.(type) {
	case nil, *types.AttributeValueMemberNULL:
	case *types.AttributeValueMemberSS:
		raws = v.Value
	case *types.AttributeValueMemberS:
		raws = []string{v.Value}
	case *types.AttributeValueMemberL:
		for i, e := range v.Value {
			s, ok := e.(*types.AttributeValueMemberS)
			if !ok {
				bad("", fmt.Sprintf("%s[%d] is a %s, not a string", attr, i, typeName(e)))
				continue
			}
			raws = append(raws, s.Value)
		}
	default:
		bad("", fmt.Sprintf("%s is a %s, not a list or string set", attr, typeName(v)))
	}
	seen := map[string]bool{}
	for _, raw := range raws {
		sym, err := symbol.Normalize(raw)
		if err != nil {
			bad(raw, err.Error())
			continue
		}
		if !seen[sym] {
			seen[sym] = true
			p.Portfolio.Symbols = append(p.Portfolio.Symbols, sym)
		}
	}
	return p
}
