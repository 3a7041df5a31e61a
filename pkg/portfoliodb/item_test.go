package portfoliodb

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/symbol"
)

type item = map[string]types.AttributeValue

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

func TestParsePosition(t *testing.T) {
	tests := []struct {
		name       string
		item       item
		symbol     string // "" when no position
		qty, cost  *float64
		invalid    string // substring of the one Invalid reason, "" for none
		pid, pname string
	}{
		{name: "documented", item: item{"portfolioId": s("p1"), "positionId": s("x"), "ticker": s("aapl"), "quantity": n("3"), "costBasis": n("150.5")},
			symbol: "AAPL", qty: ptr(3), cost: ptr(150.5), pid: "p1"},
		{name: "symbol and portfolio name", item: item{"portfolio": s("ZSM Seven"), "symbol": s(" brk.b "), "quantity": s("2.5")},
			symbol: "BRK.B", qty: ptr(2.5), pname: "ZSM Seven"},
		{name: "ticker wins over symbol", item: item{"ticker": s("MSFT"), "symbol": s("bad!")}, symbol: "MSFT"},
		{name: "null ticker falls back to symbol", item: item{"ticker": &types.AttributeValueMemberNULL{Value: true}, "symbol": s("ibm")}, symbol: "IBM"},
		{name: "no symbol", item: item{"portfolioId": s("p1")}, invalid: "no ticker or symbol", pid: "p1"},
		{name: "numeric ticker", item: item{"ticker": n("7")}, invalid: "ticker is a N, not a string"},
		{name: "invalid symbol", item: item{"ticker": s("DROP TABLE;")}, invalid: "invalid ticker symbol"},
		// Share classes as other systems spell them: Polygon's spelling.
		{name: "share class with a hyphen", item: item{"ticker": s("brk-b")}, symbol: "BRK.B"},
		{name: "share class with a slash", item: item{"ticker": s("BRK/B")}, symbol: "BRK.B"},
		{name: "trailing separator", item: item{"ticker": s("BRK-")}, invalid: "trailing separator"},
		{name: "control character", item: item{"ticker": s("A\nB")}, invalid: "invalid ticker symbol"},
		{name: "bad quantity keeps the position", item: item{"ticker": s("AAPL"), "quantity": s("ten")}, symbol: "AAPL", invalid: `quantity "ten" is not a finite number`},
		{name: "infinite cost", item: item{"ticker": s("AAPL"), "costBasis": n("1e999")}, symbol: "AAPL", invalid: "costBasis"},
		{name: "quantity of the wrong type", item: item{"ticker": s("AAPL"), "quantity": &types.AttributeValueMemberBOOL{Value: true}}, symbol: "AAPL", invalid: "quantity is a BOOL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parsePosition("portfolio-positions-test", tt.item)
			if p.PortfolioID != tt.pid || p.PortfolioName != tt.pname {
				t.Errorf("portfolio %q/%q", p.PortfolioID, p.PortfolioName)
			}
			switch {
			case tt.symbol == "" && p.Position != nil:
				t.Errorf("position %+v from an item without a valid symbol", *p.Position)
			case tt.symbol != "" && (p.Position == nil || p.Position.Symbol != tt.symbol):
				t.Fatalf("position %+v, want symbol %s", p.Position, tt.symbol)
			case tt.symbol != "":
				if !eq(p.Position.Quantity, tt.qty) || !eq(p.Position.CostBasis, tt.cost) {
					t.Errorf("quantity %v cost %v", deref(p.Position.Quantity), deref(p.Position.CostBasis))
				}
			}
			if tt.invalid == "" {
				if len(p.Invalid) != 0 {
					t.Errorf("unexpected invalid %+v", p.Invalid)
				}
				return
			}
			if len(p.Invalid) != 1 || !strings.Contains(p.Invalid[0].Reason, tt.invalid) {
				t.Fatalf("invalid %+v, want one with %q", p.Invalid, tt.invalid)
			}
			if p.Invalid[0].Table != "portfolio-positions-test" || !strings.HasPrefix(p.Invalid[0].Key, "portfolioId=") {
				t.Errorf("invalid origin %+v", p.Invalid[0])
			}
		})
	}
}

func TestParsePortfolio(t *testing.T) {
	tests := []struct {
		name    string
		item    item
		symbols []string
		invalid int
	}{
		{"list", item{"portfolioId": s("p1"), "name": s("ZSM Seven"), "tickers": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("aapl"), s("AAPL"), s("nvda")}}}, []string{"AAPL", "NVDA"}, 0},
		{"string set", item{"name": s("G"), "symbols": &types.AttributeValueMemberSS{Value: []string{"TSLA", "x;y"}}}, []string{"TSLA"}, 1},
		{"one string", item{"name": s("G"), "tickers": s("msft")}, []string{"MSFT"}, 0},
		{"none", item{"name": s("G")}, nil, 0},
		{"list with a number", item{"tickers": &types.AttributeValueMemberL{Value: []types.AttributeValue{n("1"), s("IBM")}}}, []string{"IBM"}, 1},
		{"number set", item{"tickers": &types.AttributeValueMemberNS{Value: []string{"1"}}}, nil, 1},
		{"null tickers falls back to symbols", item{"tickers": &types.AttributeValueMemberNULL{Value: true}, "symbols": s("ibm")}, []string{"IBM"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parsePortfolio("user-portfolios-test", tt.item)
			if !slices.Equal(p.Portfolio.Symbols, tt.symbols) {
				t.Errorf("symbols %v, want %v", p.Portfolio.Symbols, tt.symbols)
			}
			if len(p.Invalid) != tt.invalid {
				t.Errorf("invalid %+v, want %d", p.Invalid, tt.invalid)
			}
		})
	}
}

func TestKeyIsSafelyQuoted(t *testing.T) {
	long := strings.Repeat("x", 500)
	k := keyOf(tablesPositions(), item{"portfolioId": s("p\n1\x1b[31m"), "positionId": s(long)})
	if strings.ContainsAny(k, "\n\x1b") || len(k) > 140 {
		t.Fatalf("key %q", k)
	}
	if !strings.Contains(k, `portfolioId="p\n1\x1b[31m"`) {
		t.Fatalf("key %q does not show the escaped value", k)
	}
	if k := keyOf(tablesPositions(), item{"portfolioId": n("1")}); k != "portfolioId=? positionId=?" {
		t.Fatalf("key %q", k)
	}
}

// FuzzParseItem builds items of any shape from the fuzzer's values and checks
// that the parsers never panic, accept only valid symbols, never yield a
// non-finite number, and report every rejection with a bounded, escaped key.
func FuzzParseItem(f *testing.F) {
	f.Add("ticker", "aapl", uint8(0), "10", "p1")
	f.Fuzz(func(t *testing.T, attr, value string, shape uint8, qty, key string) {
		var av types.AttributeValue
		parts := strings.Split(value, ",")
		switch shape % 5 {
		case 0:
			av = s(value)
		case 1:
			l := &types.AttributeValueMemberL{}
			for _, p := range parts {
				l.Value = append(l.Value, s(p))
			}
			av = l
		case 2:
			av = &types.AttributeValueMemberSS{Value: parts}
		case 3:
			av = n(value)
		case 4:
			av = &types.AttributeValueMemberM{Value: item{value: s(qty)}}
		}
		it := item{attr: av, "quantity": s(qty), "costBasis": n(qty), "portfolioId": s(key), "positionId": s(key), "userId": s(key)}
		check := func(invalid []Invalid) {
			for _, inv := range invalid {
				if inv.Reason == "" || inv.Table == "" || inv.Key == "" {
					t.Fatalf("invalid without origin: %+v", inv)
				}
				if strings.ContainsAny(inv.Key, "\n\r\x00") || len(inv.Key) > 400 {
					t.Fatalf("key not safely quoted: %q", inv.Key)
				}
			}
		}
		pos := parsePosition("positions", it)
		check(pos.Invalid)
		if pos.Position != nil {
			if !symbol.Valid(pos.Position.Symbol) {
				t.Fatalf("accepted symbol %q", pos.Position.Symbol)
			}
			for _, v := range []*float64{pos.Position.Quantity, pos.Position.CostBasis} {
				if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
					t.Fatalf("non-finite number %v", *v)
				}
			}
		}
		pf := parsePortfolio("portfolios", it)
		check(pf.Invalid)
		seen := map[string]bool{}
		for _, v := range pf.Portfolio.Symbols {
			if !symbol.Valid(v) || seen[v] {
				t.Fatalf("portfolio symbols %q", pf.Portfolio.Symbols)
			}
			seen[v] = true
		}
	})
}

func ptr(f float64) *float64 { return &f }

func eq(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func deref(a *float64) any {
	if a == nil {
		return nil
	}
	return *a
}

func tablesPositions() deploy.Table { return deploy.PortfolioPositions }
