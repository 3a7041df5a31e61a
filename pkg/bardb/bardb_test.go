package bardb_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

func newStore(t *testing.T) (*bardb.Store, *dynamodb.Client, string) {
	t.Helper()
	env := dynalitetest.New(t, deploy.DailyBars)
	name := deploy.DailyBars.Name(env.Stage)
	return bardb.NewStore(env.Client, name), env.Client, name
}

func bar(date string, c float64) marketdata.Bar {
	return marketdata.Bar{Date: date, Open: c - 1, High: c + 1, Low: c - 2, Close: c, Volume: 1234.5}
}

func TestHistoryRoundTripsAndKeepsRecordsApart(t *testing.T) {
	s, db, table := newStore(t)
	ctx := context.Background()
	if err := s.ReplaceHistory(ctx, "BRK.B", bardb.Replace{
		Bars: []marketdata.Bar{bar("2026-11-20", 100.125), bar("2026-11-23", 101.3), bar("2026-11-24", 99.99)},
		Meta: bardb.Meta{VerifiedThrough: "2026-11-24", HistoryStart: "2026-11-20"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDayBars(ctx, map[string]marketdata.Bar{"BRK.B": bar("2026-11-25", 102.5), "AAPL": bar("2026-11-25", 200)}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSplits(ctx, []marketdata.Split{{Ticker: "BRK.B", ExecutionDate: "2026-11-25", From: 1, To: 4}}); err != nil {
		t.Fatal(err)
	}
	h, err := s.History(ctx, "BRK.B", "2026-11-23")
	if err != nil {
		t.Fatal(err)
	}
	var dates []string
	for _, b := range h.Bars {
		dates = append(dates, b.Date)
	}
	if !slices.Equal(dates, []string{"2026-11-23", "2026-11-24", "2026-11-25"}) || h.Last() != "2026-11-25" {
		t.Fatalf("dates %v", dates)
	}
	// Exact decimals, and midnight New York (EST: 05:00 UTC).
	if b := h.Bars[0]; b.Close != 101.3 || b.Open != 100.3 || b.Volume != 1234.5 || b.Start != time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC) {
		t.Errorf("bar %+v", b)
	}
	if h.Meta != (bardb.Meta{VerifiedThrough: "2026-11-24", HistoryStart: "2026-11-20"}) {
		t.Errorf("meta %+v", h.Meta)
	}
	if h.Split == nil || h.Split.ExecutionDate != "2026-11-25" || h.Split.Ratio() != 4 {
		t.Errorf("split %+v", h.Split)
	}
	// The TTL: two years after midnight New York of the date, in seconds.
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		"ticker": &types.AttributeValueMemberS{Value: "AAPL"}, "date": &types.AttributeValueMemberS{Value: "2026-11-25"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 25, 5, 0, 0, 0, time.UTC).Add(730 * 24 * time.Hour).Unix()
	if v := out.Item["expiresAt"].(*types.AttributeValueMemberN).Value; v != itoa(want) {
		t.Errorf("expiresAt %s, want %d", v, want)
	}
	if v := out.Item["src"].(*types.AttributeValueMemberS).Value; v != "grouped" {
		t.Errorf("src %s", v)
	}

	// A backfill replaces the window, removes the dates asked, clears the split.
	if err := s.ReplaceHistory(ctx, "BRK.B", bardb.Replace{
		Bars:   []marketdata.Bar{bar("2026-11-23", 25.3), bar("2026-11-25", 25.6)},
		Remove: []string{"2026-11-24"},
		Meta:   bardb.Meta{VerifiedThrough: "2026-11-25"},
	}); err != nil {
		t.Fatal(err)
	}
	h, err = s.History(ctx, "BRK.B", "2026-11-01")
	if err != nil {
		t.Fatal(err)
	}
	dates = nil
	for _, b := range h.Bars {
		dates = append(dates, b.Date)
	}
	if !slices.Equal(dates, []string{"2026-11-20", "2026-11-23", "2026-11-25"}) || h.Bars[1].Close != 25.3 || h.Split != nil || h.Meta.HistoryStart != "" {
		t.Errorf("after the backfill: %v %+v %+v %+v", dates, h.Bars, h.Split, h.Meta)
	}
	if ok, err := s.HasHistory(ctx, "BRK.B"); !ok || err != nil {
		t.Errorf("HasHistory(BRK.B) = %v %v", ok, err)
	}
	if ok, err := s.HasHistory(ctx, "MSFT"); ok || err != nil {
		t.Errorf("HasHistory(MSFT) = %v %v", ok, err)
	}
}

func TestDayAndMarketState(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	if _, ok, err := s.Day(ctx, "2026-11-25"); ok || err != nil {
		t.Fatalf("no state yet: %v %v", ok, err)
	}
	d := bardb.DayState{Date: "2026-11-25", Status: bardb.DayPublished, Parts: []string{"run-1/tickers/1", "run-1/tickers/1"}, Rows: 9000, Merged: 7, Skipped: 3, Missing: 1}
	if err := s.PutDay(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Day(ctx, "2026-11-25")
	if err != nil || !ok || got.Status != bardb.DayPublished || !got.HasPart("run-1/tickers/1") || len(got.Parts) != 1 || got.Rows != 9000 ||
		got.Merged != 7 || got.Skipped != 3 || got.Missing != 1 || got.UpdatedAt.IsZero() {
		t.Fatalf("day %+v %v %v", got, ok, err)
	}
	if m, err := s.Market(ctx); err != nil || m != (bardb.MarketState{}) {
		t.Fatalf("market %+v %v", m, err)
	}
	if err := s.PutMarket(ctx, bardb.MarketState{SplitsThrough: "2026-11-25"}); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Market(ctx); m.SplitsThrough != "2026-11-25" {
		t.Fatalf("market %+v", m)
	}
}

func TestBadBarsAreRefusedBeforeAnyWrite(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	for _, bars := range []map[string]marketdata.Bar{
		{"AAPL": bar("2026-13-01", 1)},
		{"aapl": bar("2026-11-25", 10)},
		{"AAPL": {Date: "2026-11-25", Open: 1, High: 1, Low: 1, Close: 0}},
	} {
		if err := s.PutDayBars(ctx, bars); err == nil {
			t.Errorf("PutDayBars(%v) accepted", bars)
		}
	}
}

// unprocessed answers BatchWriteItem with everything unprocessed n times.
type unprocessed struct {
	bardb.DynamoDBAPI
	n, calls int
}

func (u *unprocessed) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	u.calls++
	if u.calls <= u.n {
		return &dynamodb.BatchWriteItemOutput{UnprocessedItems: in.RequestItems}, nil
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func TestUnprocessedItemsAreResent(t *testing.T) {
	ctx := context.Background()
	u := &unprocessed{n: 2}
	s := bardb.NewStore(u, "daily-bars-test")
	s.Retry.Attempts, s.Retry.Sleep = 6, func(context.Context, time.Duration) error { return nil }
	if err := s.PutDayBars(ctx, map[string]marketdata.Bar{"AAPL": bar("2026-11-25", 10)}); err != nil || u.calls != 3 {
		t.Fatalf("err %v after %d calls, want success after 3", err, u.calls)
	}
	u = &unprocessed{n: 100}
	s = bardb.NewStore(u, "daily-bars-test")
	s.Retry.Attempts, s.Retry.Sleep = 3, func(context.Context, time.Duration) error { return nil }
	err := s.PutDayBars(ctx, map[string]marketdata.Bar{"AAPL": bar("2026-11-25", 10)})
	if err == nil || u.calls != 3 || errors.Is(err, context.Canceled) {
		t.Fatalf("err %v after %d calls", err, u.calls)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
