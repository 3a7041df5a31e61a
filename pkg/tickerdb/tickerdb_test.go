package tickerdb_test

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

// closeAt is 16:00 New York of date, computed here with a fixed offset so the
// reference does not come from the code under test (EST in these tests).
func closeAt(t *testing.T, date string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		t.Fatal(err)
	}
	return d.Add(21 * time.Hour) // 16:00 EST = 21:00 UTC
}

func ptr(f float64) *float64 { return &f }

func newStore(t *testing.T) (*tickerdb.Store, *dynamodb.Client, string) {
	t.Helper()
	env := dynalitetest.New(t, deploy.TickerData)
	name := deploy.TickerData.Name(env.Stage)
	return tickerdb.NewStore(env.Client, name), env.Client, name
}

func countItems(t *testing.T, c *dynamodb.Client, table, ticker string) int {
	t.Helper()
	out, err := c.Query(context.Background(), &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("ticker = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberS{Value: ticker}},
		Select:                    types.SelectCount,
	})
	if err != nil {
		t.Fatal(err)
	}
	return int(out.Count)
}

func TestPutSameTradingDayOverwrites(t *testing.T) {
	s, c, table := newStore(t)
	ctx := context.Background()
	row := tickerdb.Row{Ticker: "AAPL", Timestamp: closeAt(t, "2026-11-27"), Snapshot: indicators.Snapshot{AsOf: "2026-11-27", Price: 230.5, RSI: ptr(55.1), MA50: ptr(225), Bars: 251}, FetchedAt: time.Date(2026, 11, 28, 2, 31, 0, 0, time.UTC), Source: "polygon"}
	if err := s.Put(ctx, row); err != nil {
		t.Fatal(err)
	}
	// A retry of the same message later the same night, with a new price.
	row.Price, row.RSI, row.FetchedAt = 231.25, ptr(56), row.FetchedAt.Add(20*time.Minute)
	if err := s.Put(ctx, row); err != nil {
		t.Fatal(err)
	}
	if n := countItems(t, c, table, "AAPL"); n != 1 {
		t.Fatalf("%d items for one ticker and trading day, want 1", n)
	}
	got, ok, err := s.Latest(ctx, "AAPL")
	if err != nil || !ok {
		t.Fatalf("Latest: %v %v", ok, err)
	}
	if got.Price != 231.25 || *got.RSI != 56 || !got.FetchedAt.Equal(row.FetchedAt) {
		t.Fatalf("latest row %+v is not the second write", got)
	}
	// The stored item has the documented attribute types.
	out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		"ticker": &types.AttributeValueMemberS{Value: "AAPL"}, "timestamp": &types.AttributeValueMemberS{Value: "2026-11-27T21:00:00Z"}}})
	if err != nil || out.Item == nil {
		t.Fatalf("item under the documented key: %v %v", out, err)
	}
	for attr, typ := range map[string]string{"price": "N", "rsi": "N", "ma50": "N", "asOf": "S", "bars": "N", "fetchedAt": "S", "source": "S"} {
		var got string
		switch out.Item[attr].(type) {
		case *types.AttributeValueMemberN:
			got = "N"
		case *types.AttributeValueMemberS:
			got = "S"
		}
		if got != typ {
			t.Errorf("attribute %s has type %q, want %s", attr, got, typ)
		}
	}
}

func TestLatestReturnsNewestTradingDay(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	// Written out of order; includes a month and year boundary.
	for i, d := range []string{"2026-11-25", "2027-01-04", "2026-12-31", "2026-11-27"} {
		if err := s.Put(ctx, tickerdb.Row{Ticker: "MSFT", Timestamp: closeAt(t, d), Snapshot: indicators.Snapshot{AsOf: d, Price: float64(400 + i), Bars: 300}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, tickerdb.Row{Ticker: "MSFT.B", Timestamp: closeAt(t, "2027-02-01"), Snapshot: indicators.Snapshot{AsOf: "2027-02-01", Price: 1}}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Latest(ctx, "MSFT")
	if err != nil || !ok {
		t.Fatalf("Latest: %v %v", ok, err)
	}
	if got.AsOf != "2027-01-04" || got.Price != 401 || got.RSI != nil || got.MA50 != nil || got.Bars != 300 {
		t.Fatalf("latest %+v, want the 2027-01-04 row without indicators", got)
	}
	if _, ok, err := s.Latest(ctx, "NONE"); ok || err != nil {
		t.Fatalf("Latest of an unknown ticker: %v %v", ok, err)
	}
}

func TestPutRejectsRowsThatCannotBeStored(t *testing.T) {
	s, _, _ := newStore(t)
	ok := tickerdb.Row{Ticker: "AAPL", Timestamp: closeAt(t, "2026-11-27"), Snapshot: indicators.Snapshot{AsOf: "2026-11-27", Price: 1}}
	tests := map[string]func(r *tickerdb.Row){
		"lower-case ticker": func(r *tickerdb.Row) { r.Ticker = "aapl" },
		"empty ticker":      func(r *tickerdb.Row) { r.Ticker = "" },
		"zero timestamp":    func(r *tickerdb.Row) { r.Timestamp = time.Time{} },
		"bad asOf":          func(r *tickerdb.Row) { r.AsOf = "27/11/2026" },
		"NaN price":         func(r *tickerdb.Row) { r.Price = math.NaN() },
		"infinite RSI":      func(r *tickerdb.Row) { r.RSI = ptr(math.Inf(1)) },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			r := ok
			mutate(&r)
			err := s.Put(context.Background(), r)
			if err == nil || !retry.IsPermanent(err) {
				t.Fatalf("err = %v, want a permanent error", err)
			}
		})
	}
}

// Has and Stored find a row by its trading day: the key is the close of that
// day (16:00 EST = 21:00 UTC in November, computed here by hand).
func TestHasAndStoredFindTheRowOfADay(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	for _, tk := range []string{"AAPL", "BRK.B"} {
		row := tickerdb.Row{Ticker: tk, Timestamp: closeAt(t, "2026-11-25"), Snapshot: indicators.Snapshot{AsOf: "2026-11-25", Price: 10}}
		if err := s.Put(ctx, row); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ticker, date string
		want         bool
	}{{"AAPL", "2026-11-25", true}, {"AAPL", "2026-11-24", false}, {"MSFT", "2026-11-25", false}} {
		if got, err := s.Has(ctx, c.ticker, c.date); err != nil || got != c.want {
			t.Errorf("Has(%s, %s) = %v, %v; want %v", c.ticker, c.date, got, err, c.want)
		}
	}
	var many []string
	for i := range 230 { // three BatchGetItem calls
		many = append(many, "T"+strconv.Itoa(i))
	}
	many = append(many, "BRK.B", "AAPL")
	got, err := s.Stored(ctx, many, "2026-11-25")
	if err != nil || len(got) != 2 || !got["AAPL"] || !got["BRK.B"] {
		t.Fatalf("Stored = %v, %v", got, err)
	}
	if _, err := s.Has(ctx, "aapl", "2026-11-25"); err == nil || !retry.IsPermanent(err) {
		t.Errorf("Has of a non-normalized symbol: %v", err)
	}
}

// A partial row (computed while its window was being filled) is stored and
// read back as one, and neither Has nor Stored counts it: the row is
// computed again; the complete row written over it counts.
func TestPartialRowsDoNotCount(t *testing.T) {
	s, db, table := newStore(t)
	ctx := context.Background()
	row := tickerdb.Row{Ticker: "AAPL", Timestamp: closeAt(t, "2026-11-25"), Snapshot: indicators.Snapshot{AsOf: "2026-11-25", Price: 10, RSI: ptr(55)}, Partial: true}
	if err := s.Put(ctx, row); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.Latest(ctx, "AAPL"); err != nil || !got.Partial || *got.RSI != 55 {
		t.Fatalf("latest %+v %v", got, err)
	}
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		"ticker": &types.AttributeValueMemberS{Value: "AAPL"}, "timestamp": &types.AttributeValueMemberS{Value: "2026-11-25T21:00:00Z"}}})
	if err != nil || out.Item["partial"].(*types.AttributeValueMemberBOOL).Value != true {
		t.Fatalf("item %v %v", out.Item, err)
	}
	if has, err := s.Has(ctx, "AAPL", "2026-11-25"); has || err != nil {
		t.Errorf("Has counts a partial row: %v %v", has, err)
	}
	if got, err := s.Stored(ctx, []string{"AAPL"}, "2026-11-25"); len(got) != 0 || err != nil {
		t.Errorf("Stored counts a partial row: %v %v", got, err)
	}
	row.Partial = false
	if err := s.Put(ctx, row); err != nil {
		t.Fatal(err)
	}
	if has, _ := s.Has(ctx, "AAPL", "2026-11-25"); !has {
		t.Error("the complete row does not count")
	}
	if got, _ := s.Stored(ctx, []string{"AAPL"}, "2026-11-25"); !got["AAPL"] {
		t.Error("Stored misses the complete row")
	}
	if got, _, _ := s.Latest(ctx, "AAPL"); got.Partial {
		t.Error("the complete row reads as partial")
	}
	if _, ok := out.Item["partial"]; !ok {
		t.Error("reference")
	}
}
