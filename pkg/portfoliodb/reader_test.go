package portfoliodb_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/portfoliodb"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

type item = map[string]types.AttributeValue

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
func l(vs ...types.AttributeValue) types.AttributeValue {
	return &types.AttributeValueMemberL{Value: vs}
}

// fixture is a generated pair of shared tables and what a correct reader
// must find in them, derived from how the fixture was generated.
type fixture struct {
	portfolios, positions []item
	symbols               map[string]bool // every valid symbol (normalized)
	invalid               int             // planted invalid symbols
	zsm                   map[string]int  // positions of "ZSM Seven" per symbol
	zsmBadQuantity        int
}

// padding makes each position item about 1 KB so that 2,500 of them span
// several of DynamoDB's 1 MB scan pages without any Limit.
var padding = strings.Repeat("n", 1000)

func sym(i int) string { return fmt.Sprintf("Q%c%c", 'A'+i/26%26, 'A'+i%26) }

func buildFixture(positions int) fixture {
	f := fixture{symbols: map[string]bool{}, zsm: map[string]int{}}
	f.portfolios = []item{
		// Documented shape: tickers as a list (with one invalid and one non-string entry).
		{"userId": s("u1"), "portfolioId": s("p-zsm"), "name": s("ZSM Seven"), "tickers": l(s("nvda"), s("AAPL"), s("bad ticker!"), n("5"))},
		// Other shape: symbols as a string set.
		{"userId": s("u2"), "portfolioId": s("p-growth"), "name": s("Growth"), "symbols": &types.AttributeValueMemberSS{Value: []string{"TSLA", "brk.b"}}},
		{"userId": s("u3"), "portfolioId": s("p-empty"), "name": s("Empty")},
		// A tickers attribute of a type no one documented.
		{"userId": s("u4"), "portfolioId": s("p-map"), "name": s("Mapped"), "tickers": &types.AttributeValueMemberM{Value: item{"a": s("MSFT")}}},
	}
	for _, v := range []string{"NVDA", "AAPL", "TSLA", "BRK.B"} {
		f.symbols[v] = true
	}
	f.invalid = 3 // "bad ticker!", the number 5, the map
	f.zsm["NVDA"], f.zsm["AAPL"] = 0, 0

	for i := range positions {
		it := item{"positionId": s(fmt.Sprintf("pos-%05d", i)), "notes": s(padding)}
		zsm := i%4 == 0
		switch {
		case zsm && i%3 == 0:
			// Other shape: the portfolio by name, under a legacy id.
			it["portfolioId"], it["portfolio"] = s(fmt.Sprintf("legacy-%d", i%10)), s("ZSM Seven")
		case zsm:
			it["portfolioId"] = s("p-zsm")
		default:
			it["portfolioId"] = s(fmt.Sprintf("p-%d", i%50))
		}
		symAttr := "ticker"
		if i%7 == 0 {
			symAttr = "symbol" // the other documented shape
		}
		raw := strings.ToLower(sym(i % 300))
		valid := true
		switch {
		case i%101 == 0:
			raw, valid = fmt.Sprintf("bad$%d", i), false
		case i%211 == 0:
			raw, valid = "A\nB", false
		case i%307 == 0:
			raw, valid = "", false
		}
		it[symAttr] = s(raw)
		if i%401 == 0 {
			it[symAttr], valid = n("42"), false
		}
		switch i % 3 {
		case 0:
			it["quantity"] = n("10")
		case 1:
			it["quantity"] = s(" 12.5 ")
		}
		if zsm && i%13 == 0 {
			it["quantity"] = s("ten")
			if valid {
				// A position without a valid symbol is reported for that
				// alone.
				f.zsmBadQuantity++
			}
		}
		if !valid {
			f.invalid++
		} else {
			up := strings.ToUpper(raw)
			f.symbols[up] = true
			if zsm {
				f.zsm[up]++
			}
		}
		f.positions = append(f.positions, it)
	}
	return f
}

func load(t *testing.T, c *dynamodb.Client, table string, items []item) {
	t.Helper()
	for start := 0; start < len(items); start += 25 {
		var reqs []types.WriteRequest
		for _, it := range items[start:min(start+25, len(items))] {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		}
		in := map[string][]types.WriteRequest{table: reqs}
		for len(in) > 0 {
			out, err := c.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: in})
			if err != nil {
				t.Fatalf("load %s: %v", table, err)
			}
			in = out.UnprocessedItems
		}
	}
}

func setup(t *testing.T, positions int) (*portfoliodb.Reader, fixture, string) {
	t.Helper()
	env := dynalitetest.New(t, deploy.UserPortfolios, deploy.PortfolioPositions)
	f := buildFixture(positions)
	pt, pos := deploy.UserPortfolios.Name(env.Stage), deploy.PortfolioPositions.Name(env.Stage)
	start := time.Now()
	load(t, env.Client, pt, f.portfolios)
	load(t, env.Client, pos, f.positions)
	t.Logf("loaded %d portfolios and %d positions in %s", len(f.portfolios), len(f.positions), time.Since(start).Round(time.Millisecond))
	return portfoliodb.NewReader(env.Client, pt, pos), f, pos
}

func TestScanSymbolsAcrossPages(t *testing.T) {
	const positions = 2600
	r, f, posTable := setup(t, positions)
	start := time.Now()
	res, err := r.ScanSymbols(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scanned %d items in %d pages in %s", res.ItemsScanned, res.Pages, time.Since(start).Round(time.Millisecond))
	if res.ItemsScanned != positions+len(f.portfolios) {
		t.Errorf("ItemsScanned = %d, want %d", res.ItemsScanned, positions+len(f.portfolios))
	}
	// One page of portfolios and, at ~1 KB an item, at least 3 of positions.
	if res.Pages < 4 {
		t.Errorf("Pages = %d: the fixture must span several 1 MB pages", res.Pages)
	}
	want := make([]string, 0, len(f.symbols))
	for v := range f.symbols {
		want = append(want, v)
	}
	slices.Sort(want)
	if !slices.Equal(res.Symbols, want) {
		t.Errorf("symbols: got %d, want %d\n got  %v\n want %v", len(res.Symbols), len(want), head(res.Symbols), head(want))
	}
	if len(res.Invalid) != f.invalid {
		t.Errorf("%d invalid, want %d", len(res.Invalid), f.invalid)
	}
	for _, inv := range res.Invalid {
		if inv.Reason == "" || inv.Table == "" || inv.Key == "" {
			t.Errorf("invalid entry without its origin: %+v", inv)
		}
		if inv.Table == posTable && !strings.Contains(inv.Key, `positionId="pos-`) {
			t.Errorf("position key %q does not name the item", inv.Key)
		}
		if strings.ContainsAny(inv.Key, "\n\r") {
			t.Errorf("key %q is not safely quoted", inv.Key)
		}
	}
}

func TestScanSymbolsWithPageLimit(t *testing.T) {
	r, f, _ := setup(t, 120)
	r.PageSize = 25
	res, err := r.ScanSymbols(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 4 portfolios in one page (plus DynamoDB's empty last page check is not
	// made when fewer than Limit items return); 120 positions in ≥ 5 pages.
	if res.Pages < 6 || res.ItemsScanned != 124 {
		t.Errorf("pages %d, items %d", res.Pages, res.ItemsScanned)
	}
	if len(res.Symbols) != len(f.symbols) || len(res.Invalid) != f.invalid {
		t.Errorf("%d symbols (want %d), %d invalid (want %d)", len(res.Symbols), len(f.symbols), len(res.Invalid), f.invalid)
	}
}

func head(v []string) []string { return v[:min(len(v), 12)] }

func TestHoldingsAndList(t *testing.T) {
	r, f, _ := setup(t, 2500)
	ctx := context.Background()

	pf, positions, invalid, err := r.Holdings(ctx, "ZSM Seven")
	if err != nil {
		t.Fatal(err)
	}
	if pf.ID != "p-zsm" || !slices.Equal(pf.Symbols, []string{"NVDA", "AAPL"}) {
		t.Errorf("portfolio %+v", pf)
	}
	got := map[string]int{}
	for i, p := range positions {
		got[p.Symbol]++
		if i > 0 && positions[i-1].Symbol > p.Symbol {
			t.Fatalf("positions not sorted at %d", i)
		}
	}
	// Symbols listed only on the portfolio item count once, without quantity.
	want := map[string]int{}
	for k, v := range f.zsm {
		want[k] = max(v, 1)
	}
	if len(got) != len(want) {
		t.Errorf("%d symbols held, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d positions, want %d", k, got[k], v)
		}
	}
	var withQty int
	for _, p := range positions {
		if p.Quantity != nil {
			withQty++
			if *p.Quantity != 10 && *p.Quantity != 12.5 {
				t.Errorf("%s quantity %v", p.Symbol, *p.Quantity)
			}
		}
	}
	if withQty == 0 {
		t.Error("no quantities read (N and numeric strings)")
	}
	var badQty, badSym int
	for _, inv := range invalid {
		if strings.Contains(inv.Reason, "quantity") {
			badQty++
		} else {
			badSym++
		}
	}
	if badQty != f.zsmBadQuantity {
		t.Errorf("%d bad quantities reported, want %d", badQty, f.zsmBadQuantity)
	}
	if badSym == 0 {
		t.Error("invalid symbols of the portfolio were not reported")
	}

	_, _, _, err = r.Holdings(ctx, "No Such Portfolio")
	if !errors.Is(err, portfoliodb.ErrUnknownPortfolio) {
		t.Errorf("unknown portfolio: err = %v", err)
	}

	list, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
	}
	if want := []string{"Empty", "Growth", "Mapped", "ZSM Seven"}; !slices.Equal(names, want) {
		t.Errorf("List names %v, want %v", names, want)
	}
	if !slices.Equal(list[1].Symbols, []string{"TSLA", "BRK.B"}) && !slices.Equal(list[1].Symbols, []string{"BRK.B", "TSLA"}) {
		t.Errorf("Growth symbols %v", list[1].Symbols)
	}
}

func TestScanErrorNamesTheTable(t *testing.T) {
	env := dynalitetest.New(t, deploy.UserPortfolios)
	r := portfoliodb.NewReader(env.Client, deploy.UserPortfolios.Name(env.Stage), "missing-table")
	_, err := r.ScanSymbols(context.Background())
	if err == nil || !strings.Contains(err.Error(), "scan missing-table") {
		t.Fatalf("err = %v", err)
	}
}
