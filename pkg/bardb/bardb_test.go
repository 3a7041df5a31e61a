package bardb_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/retry"
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

func item(t *testing.T, db *dynamodb.Client, table, pk, sk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		"ticker": &types.AttributeValueMemberS{Value: pk}, "date": &types.AttributeValueMemberS{Value: sk}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// A session's bars of every ticker and a ticker's own bars read back, as
// stored, in one window with the ticker's ledger and record; bars outside
// the window and other tickers' entries are left out.
func TestBarsLedgerAndRecordReadInOneWindow(t *testing.T) {
	s, db, table := newStore(t)
	ctx := context.Background()
	for _, d := range []string{"2026-11-20", "2026-11-23", "2026-11-24", "2026-11-25"} {
		c := 100.125
		if d >= "2026-11-24" {
			c = 25.5
		}
		if err := s.PutSessionBars(ctx, d, map[string]marketdata.Bar{"BRK.B": bar(d, c), "AAPL": bar(d, 200)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutTickerBars(ctx, "NSRGY", []marketdata.Bar{bar("2026-11-24", 90), bar("2026-11-25", 91)}); err != nil {
		t.Fatal(err)
	}
	split := marketdata.Adjustment{Ticker: "BRK.B", Date: "2026-11-24", Kind: marketdata.KindSplit, From: 1, To: 4, ID: "E1"}
	other := marketdata.Adjustment{Ticker: "AAPL", Date: "2026-11-23", Kind: marketdata.KindSplit, From: 1, To: 2, ID: "E2"}
	if err := s.ChangeLedger(ctx, []marketdata.Adjustment{split, other}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTicker(ctx, "BRK.B", coverage.Ticker{PerTicker: "2026-11-25"}); err != nil {
		t.Fatal(err)
	}
	h, err := s.TickerHistory(ctx, "BRK.B", "2026-11-23", "2026-11-24")
	if err != nil {
		t.Fatal(err)
	}
	var dates []string
	for _, b := range h.Bars {
		dates = append(dates, b.Date)
	}
	if !slices.Equal(dates, []string{"2026-11-23", "2026-11-24"}) || len(h.Ledger) != 1 || h.Ledger[0] != split || h.Ticker.PerTicker != "2026-11-25" {
		t.Fatalf("history %v, ledger %+v, record %+v", dates, h.Ledger, h.Ticker)
	}
	// Exact decimals, and midnight New York (EST: 05:00 UTC).
	if b := h.Bars[0]; b.Close != 100.125 || b.Open != 99.125 || b.Volume != 1234.5 || b.Start != time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC) {
		t.Errorf("bar %+v", b)
	}
	// Adjusted on read as of 2026-11-25: the bar before the split is a quarter.
	adj := marketdata.Adjust(h.Bars, h.Ledger, "2026-11-25")
	if adj[0].Close != 25.03125 || adj[1].Close != 25.5 {
		t.Errorf("adjusted %v %v", adj[0].Close, adj[1].Close)
	}
	// The TTL: Retention after midnight New York of the date, in seconds; a
	// per-ticker bar is marked, a grouped one is not.
	it := item(t, db, table, "AAPL", "b#2026-11-25")
	want := time.Date(2026, 11, 25, 5, 0, 0, 0, time.UTC).Add(400 * 24 * time.Hour).Unix()
	if v := it["expiresAt"].(*types.AttributeValueMemberN).Value; v != strconv.FormatInt(want, 10) || it["src"] != nil {
		t.Errorf("expiresAt %s (want %d), src %v", v, want, it["src"])
	}
	if v := item(t, db, table, "NSRGY", "b#2026-11-24")["src"].(*types.AttributeValueMemberS).Value; v != bardb.SourceAggregates {
		t.Errorf("src %s", v)
	}
	if h, _ := s.TickerHistory(ctx, "NSRGY", "2026-11-01", "2026-11-30"); len(h.Bars) != 2 || h.Bars[1].Close != 91 {
		t.Errorf("NSRGY %+v", h.Bars)
	}
}

// Retention covers the window of indicators.Lookback sessions, at most
// Lookback × 7/5 calendar days plus the holidays in them, with a margin for
// the TTL's delay (DynamoDB deletes expired items within about two days).
func TestRetentionCoversTheWindow(t *testing.T) {
	w := coverage.Window(marketdata.NYSE(), "2027-01-04", indicators.Lookback)
	first, _ := time.Parse(time.DateOnly, w[0])
	span := time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC).Sub(first)
	if bardb.Retention < span+14*24*time.Hour {
		t.Fatalf("retention %v, the window spans %v", bardb.Retention, span)
	}
}

// The items of the design before (adjusted bars under "YYYY-MM-DD", records
// under "~meta", "~split", "#market"'s "~state" and dated states) are never
// read: adjusted and raw bars do not mix.
func TestItemsOfTheDesignBeforeAreNotRead(t *testing.T) {
	s, db, table := newStore(t)
	ctx := context.Background()
	for _, k := range [][2]string{{"AAPL", "2026-11-24"}, {"AAPL", "~meta"}, {"AAPL", "~split"}, {"#market", "~state"}, {"#market", "2026-11-24"}} {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
			"ticker": &types.AttributeValueMemberS{Value: k[0]}, "date": &types.AttributeValueMemberS{Value: k[1]},
			"o": &types.AttributeValueMemberN{Value: "1"}, "h": &types.AttributeValueMemberN{Value: "1"}, "l": &types.AttributeValueMemberN{Value: "1"},
			"c": &types.AttributeValueMemberN{Value: "1"}, "v": &types.AttributeValueMemberN{Value: "1"}, "status": &types.AttributeValueMemberS{Value: "published"},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutSessionBars(ctx, "2026-11-25", map[string]marketdata.Bar{"AAPL": bar("2026-11-25", 200)}); err != nil {
		t.Fatal(err)
	}
	h, err := s.TickerHistory(ctx, "AAPL", "2026-01-01", "2026-12-31")
	if err != nil || len(h.Bars) != 1 || h.Bars[0].Date != "2026-11-25" || len(h.Ledger) != 0 || h.Ticker != (coverage.Ticker{}) {
		t.Fatalf("history %+v, %v", h, err)
	}
	if ss, err := s.Sessions(ctx, "2026-01-01", "2026-12-31"); err != nil || len(ss) != 0 {
		t.Fatalf("sessions %+v, %v", ss, err)
	}
	if m, err := s.Market(ctx); err != nil || m.LedgerThrough != "" || len(m.Closures) != 0 {
		t.Fatalf("market %+v, %v", m, err)
	}
}

// The ledger by date lists every ticker's adjustments; a corrected entry
// (its date moved) is written as a new one and the old one removed, from
// the ticker's copy and from the index.
func TestLedgerByDateAndCorrection(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	wrong := marketdata.Adjustment{Ticker: "TQQQ", Date: "2017-01-11", Kind: marketdata.KindSplit, From: 1, To: 2, ID: "E7"}
	aapl := marketdata.Adjustment{Ticker: "AAPL", Date: "2017-01-12", Kind: marketdata.KindSplit, From: 1, To: 4, ID: "E8"}
	if err := s.ChangeLedger(ctx, []marketdata.Adjustment{wrong, aapl, wrong}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Ledger(ctx, "2017-01-01", "2017-01-31")
	if err != nil || !slices.Equal(got, []marketdata.Adjustment{wrong, aapl}) {
		t.Fatalf("ledger %+v, %v", got, err)
	}
	if got, _ := s.Ledger(ctx, "2017-01-12", "2017-01-12"); !slices.Equal(got, []marketdata.Adjustment{aapl}) {
		t.Fatalf("ledger of 2017-01-12 %+v", got)
	}
	right := wrong
	right.Date = "2017-01-12"
	if err := s.ChangeLedger(ctx, []marketdata.Adjustment{right}, []marketdata.Adjustment{wrong}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Ledger(ctx, "2017-01-01", "2017-01-31"); !slices.Equal(got, []marketdata.Adjustment{aapl, right}) {
		t.Fatalf("after the correction %+v", got)
	}
	if h, _ := s.TickerHistory(ctx, "TQQQ", "2017-01-01", "2017-01-31"); !slices.Equal(h.Ledger, []marketdata.Adjustment{right}) {
		t.Fatalf("TQQQ's copy %+v", h.Ledger)
	}
	for _, bad := range []marketdata.Adjustment{{Ticker: "tqqq", Date: "2017-01-12", Kind: marketdata.KindSplit, From: 1, To: 2}, {Ticker: "TQQQ", Date: "2017-01-12", Kind: marketdata.KindSplit, From: 1, To: 0}} {
		if err := s.ChangeLedger(ctx, []marketdata.Adjustment{bad}, nil); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestSessionNightAndMarketState(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	if _, ok, err := s.Night(ctx, "2026-11-25"); ok || err != nil {
		t.Fatalf("no night yet: %v %v", ok, err)
	}
	for _, part := range []string{"run-1/tickers/1", "run-1/tickers/1", "run-1/tickers-1/1"} {
		if err := s.AddNightPart(ctx, "2026-11-25", part); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetFallback(ctx, "2026-11-25"); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Night(ctx, "2026-11-25")
	if err != nil || !ok || !slices.Equal(got.Parts, []string{"run-1/tickers-1/1", "run-1/tickers/1"}) || !got.Fallback || got.TickerCalls != 0 || got.UpdatedAt.IsZero() {
		t.Fatalf("night %+v %v %v", got, ok, err)
	}
	at := time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC)
	for _, st := range []coverage.Session{
		{Date: "2026-11-24", Status: coverage.Stored, Rows: 11000, Bars: 10990, FetchedAt: at, Final: true, Night: "2026-11-25"},
		{Date: "2026-11-25", Status: coverage.Empty, FetchedAt: at, Night: "2026-11-25"},
		{Date: "2026-11-27", Status: coverage.Closed},
	} {
		if err := s.PutSession(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	ss, err := s.Sessions(ctx, "2026-11-24", "2026-11-25")
	if err != nil || len(ss) != 2 || ss["2026-11-24"] != (coverage.Session{Date: "2026-11-24", Status: coverage.Stored, Rows: 11000, Bars: 10990, FetchedAt: at, Final: true, Night: "2026-11-25"}) ||
		ss["2026-11-25"].Status != coverage.Empty || ss["2026-11-25"].Final || ss["2026-11-25"].Night != "2026-11-25" {
		t.Fatalf("sessions %+v %v", ss, err)
	}
	if st, ok, err := s.Session(ctx, "2026-11-27"); !ok || err != nil || st.Status != coverage.Closed {
		t.Fatalf("session %+v %v %v", st, ok, err)
	}
	if m, err := s.Market(ctx); err != nil || m.LedgerFrom != "" || m.Closures != nil {
		t.Fatalf("market %+v %v", m, err)
	}
	for _, err := range []error{
		s.SetLedger(ctx, "2025-11-19", "2026-11-25"),
		s.SetLedger(ctx, "2025-11-01", "2026-11-24"), // an older check: no change
		s.MovePlanFrom(ctx, "2024-12-02"),
		s.MovePlanFrom(ctx, "2024-11-29"), // back: no change
		s.AddClosure(ctx, marketdata.Closure{Date: "2026-03-10", Reason: "b"}),
		s.AddClosure(ctx, marketdata.Closure{Date: "2026-03-09", Reason: "a"}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.Market(ctx)
	if err != nil || m.LedgerFrom != "2025-11-19" || m.LedgerThrough != "2026-11-25" || m.PlanFrom != "2024-12-02" ||
		!slices.Equal(m.Closures, []marketdata.Closure{{Date: "2026-03-09", Reason: "a"}, {Date: "2026-03-10", Reason: "b"}}) {
		t.Fatalf("market %+v %v", m, err)
	}
}

// The night's and the market's states are merged, never written whole: the
// consumers of several message groups writing at once lose nothing, and the
// per-ticker calls of a night stop at the bound however many ask at once.
func TestConcurrentWritesMerge(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var taken atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			for _, err := range []error{
				s.AddNightPart(ctx, "2026-11-25", fmt.Sprintf("run-1/tickers-%d/1", i)),
				s.AddClosure(ctx, marketdata.Closure{Date: fmt.Sprintf("2026-03-%02d", 10+i), Reason: "learnt"}),
			} {
				if err != nil {
					t.Error(err)
				}
			}
			for range 5 {
				ok, err := s.TakeTickerCall(ctx, "2026-11-25", 20)
				if err != nil {
					t.Error(err)
				}
				if ok {
					taken.Add(1)
				}
			}
		})
	}
	wg.Wait()
	n, _, err := s.Night(ctx, "2026-11-25")
	if err != nil || len(n.Parts) != 8 || n.TickerCalls != 20 || taken.Load() != 20 {
		t.Errorf("night %+v %v, calls taken %d: want 8 parts and 20 calls of the 40 asked", n, err, taken.Load())
	}
	if m, err := s.Market(ctx); err != nil || len(m.Closures) != 8 {
		t.Errorf("market %+v %v, want 8 closures", m, err)
	}
}

// A claim is one owner's at a time until its lease ends; its owner renews
// or releases it; an expired lease is taken over.
func TestClaims(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		owner string
		now   time.Time
		want  bool
	}{
		{"a", now, true},
		{"b", now.Add(time.Minute), false},                 // a's lease runs
		{"a", now.Add(time.Minute), true},                  // renewed by its owner, until now + 4 min
		{"b", now.Add(3*time.Minute + time.Second), false}, // still a's
		{"b", now.Add(4*time.Minute + time.Second), true},  // expired: taken over
	} {
		got, err := s.Claim(ctx, "s#2026-11-25", c.owner, c.now, c.now.Add(3*time.Minute))
		if err != nil || got != c.want {
			t.Fatalf("claim by %s at %s: %v %v, want %v", c.owner, c.now.Format(time.TimeOnly), got, err, c.want)
		}
	}
	if err := s.Release(ctx, "s#2026-11-25", "a"); err != nil { // not a's any more: nothing
		t.Fatal(err)
	}
	if got, _ := s.Claim(ctx, "s#2026-11-25", "c", now.Add(5*time.Minute), now.Add(8*time.Minute)); got {
		t.Fatal("b's claim released by a")
	}
	if err := s.Release(ctx, "s#2026-11-25", "b"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, "s#2026-11-25", "c", now.Add(5*time.Minute), now.Add(8*time.Minute)); !got || err != nil {
		t.Fatalf("after b's release: %v %v", got, err)
	}
	if got, _ := s.Claim(ctx, "l#2026-11-25", "b", now, now.Add(time.Minute)); !got {
		t.Fatal("another work's claim is held by c")
	}
}

// A session of the whole market is written in batches of 25, several at
// once, and reads back whole.
func TestASessionOfTheWholeMarket(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	bars := map[string]marketdata.Bar{}
	for i := range 1000 {
		bars[fmt.Sprintf("T%04d", i)] = bar("2026-11-25", float64(10+i))
	}
	if err := s.PutSessionBars(ctx, "2026-11-25", bars); err != nil {
		t.Fatal(err)
	}
	for _, tk := range []string{"T0000", "T0500", "T0999"} {
		h, err := s.TickerHistory(ctx, tk, "2026-11-25", "2026-11-25")
		if err != nil || len(h.Bars) != 1 || h.Bars[0].Close != bars[tk].Close {
			t.Errorf("%s: %+v %v", tk, h.Bars, err)
		}
	}
}

func TestBadBarsAreRefusedBeforeAnyWrite(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	for _, bars := range []map[string]marketdata.Bar{
		{"AAPL": bar("2026-13-01", 1)},
		{"aapl": bar("2026-11-25", 10)},
		{"AAPL": {Date: "2026-11-25", Open: 1, High: 1, Low: 1, Close: 0}},
		{"AAPL": bar("2026-11-24", 10)}, // of another session
	} {
		if err := s.PutSessionBars(ctx, "2026-11-25", bars); err == nil {
			t.Errorf("PutSessionBars(%v) accepted", bars)
		}
	}
	if h, _ := s.TickerHistory(ctx, "AAPL", "2026-01-01", "2026-12-31"); len(h.Bars) != 0 {
		t.Errorf("written: %+v", h.Bars)
	}
}

// unprocessed answers BatchWriteItem with everything unprocessed n times.
type unprocessed struct {
	bardb.DynamoDBAPI
	n     int64
	calls atomic.Int64
}

func (u *unprocessed) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if u.calls.Add(1) <= u.n {
		return &dynamodb.BatchWriteItemOutput{UnprocessedItems: in.RequestItems}, nil
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func TestUnprocessedItemsAreResent(t *testing.T) {
	ctx := context.Background()
	one := map[string]marketdata.Bar{"AAPL": bar("2026-11-25", 10)}
	u := &unprocessed{n: 2}
	s := bardb.NewStore(u, "daily-bars-test")
	s.Retry.Attempts, s.Retry.Sleep = 6, func(context.Context, time.Duration) error { return nil }
	if err := s.PutSessionBars(ctx, "2026-11-25", one); err != nil || u.calls.Load() != 3 {
		t.Fatalf("err %v after %d calls, want success after 3", err, u.calls.Load())
	}
	u = &unprocessed{n: 100}
	s = bardb.NewStore(u, "daily-bars-test")
	s.Retry.Attempts, s.Retry.Sleep = 3, func(context.Context, time.Duration) error { return nil }
	err := s.PutSessionBars(ctx, "2026-11-25", one)
	if err == nil || u.calls.Load() != 3 || errors.Is(err, context.Canceled) {
		t.Fatalf("err %v after %d calls", err, u.calls.Load())
	}
}

// overflow sends every batch with the close of its first item replaced by a
// number beyond DynamoDB's range (what a finite, positive 1e200 from the
// provider would have become), so that dynalite answers as DynamoDB does: a
// 400 ValidationException.
type overflow struct{ bardb.DynamoDBAPI }

func (o overflow) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	for _, reqs := range in.RequestItems {
		reqs[0].PutRequest.Item["c"] = &types.AttributeValueMemberN{Value: "1" + strings.Repeat("0", 200)}
	}
	return o.DynamoDBAPI.BatchWriteItem(ctx, in, opts...)
}

// throttled answers every call as DynamoDB does when the table's capacity is
// exceeded: a 400 whose code says to slow down.
type throttled struct{ bardb.DynamoDBAPI }

func (throttled) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return nil, &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "BatchWriteItem", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 400}},
			Err: &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}}}}
}

// A request DynamoDB refuses (a 400 ValidationException) cannot succeed if
// sent again: a permanent error that names the batch's items. Throttling,
// also a 400, stays transient.
func TestRefusedRequestsArePermanent(t *testing.T) {
	env := dynalitetest.New(t, deploy.DailyBars)
	ctx := context.Background()
	s := bardb.NewStore(overflow{env.Client}, deploy.DailyBars.Name(env.Stage))
	err := s.PutSessionBars(ctx, "2026-11-25", map[string]marketdata.Bar{"AAPL": bar("2026-11-25", 10), "MSFT": bar("2026-11-25", 20)})
	if !retry.IsPermanent(err) || !strings.Contains(err.Error(), "ValidationException") || !strings.Contains(err.Error(), "from AAPL b#2026-11-25 to MSFT b#2026-11-25") {
		t.Errorf("err %v (permanent %v): want a permanent error naming the items", err, retry.IsPermanent(err))
	}
	s = bardb.NewStore(throttled{env.Client}, deploy.DailyBars.Name(env.Stage))
	s.Retry.Attempts, s.Retry.Sleep = 2, func(context.Context, time.Duration) error { return nil }
	if err := s.PutSessionBars(ctx, "2026-11-25", map[string]marketdata.Bar{"AAPL": bar("2026-11-25", 10)}); err == nil || retry.IsPermanent(err) {
		t.Errorf("throttled: err %v, want transient", err)
	}
}
