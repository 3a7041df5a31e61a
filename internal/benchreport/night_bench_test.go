package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pacing"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// The nights measured: a cold night (nothing stored) on Monday 2026-11-23,
// then a warm one on Tuesday 2026-11-24.
const (
	coldNight = "2026-11-23"
	warmNight = "2026-11-24"
)

// nightAt is 21:30 New York on d.
func nightAt(d string) time.Time {
	c, _ := marketdata.CloseInstant(d)
	return c.Add(5*time.Hour + 30*time.Minute)
}

// BenchmarkNight plays a cold then a warm night of N held tickers through
// processTicker as deployed — the real Polygon client, paced at the free
// plan's 5 calls per minute, against the local Polygon rate-limited at 5
// calls in any sliding minute — for the stored-history design and for the
// per-ticker design (every ticker its own call every night). The pacing and
// the server share a fake clock, so the market-data time of 10,000 tickers
// (hours of waiting) is reported without waiting it; each batch of 10
// drains the pacer, as every invocation does. DynamoDB capacity comes from
// dynalite's ConsumedCapacity (ReturnConsumedCapacity TOTAL on every call)
// at 10 and 500 tickers; the 10,000-ticker nights run on in-memory stores
// (the units are then scaled from the 500-ticker night, per ticker: every
// ticker's items have the same shape).
func BenchmarkNight(b *testing.B) {
	for _, n := range []int{10, 500, 10000} {
		for _, design := range []string{"stored", "per-ticker"} {
			b.Run(fmt.Sprintf("%s/tickers=%d", design, n), func(b *testing.B) {
				for b.Loop() {
					nb := newNightBench(b, n, design == "stored", n <= 500)
					for _, night := range []string{coldNight, warmNight} {
						r := nb.night(night)
						tag := "warm"
						if night == coldNight {
							tag = "cold"
						}
						b.ReportMetric(float64(r.calls), tag+"-calls")
						b.ReportMetric(r.market.Hours(), tag+"-market-h")
						b.ReportMetric(float64(r.throttled), tag+"-429s")
						b.ReportMetric(float64(r.maxPerMinute), tag+"-max-calls/min")
						b.ReportMetric(float64(r.stored), tag+"-rows")
						if nb.units != nil {
							b.ReportMetric(r.wcu, tag+"-wcu")
							b.ReportMetric(r.rcu, tag+"-rcu")
						}
					}
				}
			})
		}
	}
}

// nightBench is the service of one benchmark: a fake clock, the local
// Polygon, the paced client and processTicker.
type nightBench struct {
	b       *testing.B
	n       int
	tickers []string
	clock   *fakeclock.Clock
	srv     *fakepolygon.Server
	pacer   *pacing.Limiter
	p       *pipeline.ProcessTicker
	units   *capacity
	stored  int
}

// nightResult is what one night cost.
type nightResult struct {
	calls, throttled, maxPerMinute, stored int
	market                                 time.Duration
	wcu, rcu                               float64
}

func newNightBench(b *testing.B, n int, stored, dynamo bool) *nightBench {
	b.Helper()
	nb := &nightBench{b: b, n: n, clock: fakeclock.New(nightAt(coldNight))}
	for i := range n {
		nb.tickers = append(nb.tickers, ticker(i))
	}
	slices.Sort(nb.tickers)
	nb.srv = fakepolygon.New(b, fakepolygon.Options{Key: benchKey, Now: nb.clock.Now, RateLimit: deploy.DefaultPolygonCallsPerMinute,
		Window: time.Minute, Universe: nb.tickers})
	nb.pacer = pacing.New(deploy.DefaultPolygonCallsPerMinute, pacing.Options{Now: nb.clock.Now, Sleep: nb.clock.Sleep})
	client, err := polygon.New(polygon.Options{BaseURL: nb.srv.URL, APIKey: polygon.StaticKey(benchKey), Pacer: nb.pacer,
		Now: nb.clock.Now, Sleep: nb.clock.Sleep, Retry: retry.Policy{Attempts: 4}})
	if err != nil {
		b.Fatal(err)
	}
	nb.p = &pipeline.ProcessTicker{Market: client, Source: "polygon", Now: nb.clock.Now}
	var rows pipeline.TickerStore
	var bars pipeline.BarStore
	if dynamo {
		env := dynalitetest.New(b, deploy.TickerData, deploy.DailyBars)
		nb.units = &capacity{client: env.Client}
		rows = tickerdb.NewStore(nb.units, deploy.TickerData.Name(env.Stage))
		bars = bardb.NewStore(nb.units, deploy.DailyBars.Name(env.Stage))
	} else {
		mem := newMemStores()
		rows, bars = mem, mem
	}
	nb.p.Store = rows
	if stored {
		nb.p.Grouped, nb.p.Bars = client, bars
	}
	nb.p.Observer = func(r pipeline.Record) {
		if r.Outcome == pipeline.Stored {
			nb.stored++
		}
	}
	return nb
}

// night runs processTicker over the night of d: the day message and one
// message per ticker (as processTickers queues them), in batches of 10.
func (nb *nightBench) night(d string) nightResult {
	nb.b.Helper()
	// A cold night of 10,000 tickers on the free plan lasts 34 hours: the
	// next night starts when it is done (the clock never goes back).
	if at := nightAt(d); at.After(nb.clock.Now()) {
		nb.clock.Set(at)
	} else {
		nb.clock.Advance(time.Minute)
	}
	calls0, throttled0, stored0 := nb.srv.Calls(), nb.srv.Throttled(), nb.stored
	var w0, r0 float64
	if nb.units != nil {
		w0, r0 = nb.units.totals()
	}
	at := nb.clock.Now()
	msgs := []queue.Message{queue.NewDay(d, nb.tickers, "tickers", 1, 1, "bench-"+d, at)}
	for _, t := range nb.tickers {
		msgs = append(msgs, queue.NewTicker(t, d, "bench-"+d, at))
	}
	start := nb.clock.Now()
	for i := 0; i < len(msgs); i += localsqs.MaxBatch {
		var ev events.SQSEvent
		for j, m := range msgs[i:min(i+localsqs.MaxBatch, len(msgs))] {
			body, err := m.Encode()
			if err != nil {
				nb.b.Fatal(err)
			}
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint(d, "-", i+j), Body: body,
				EventSourceARN: localsqs.ARN("ticker-processing-queue-bench.fifo")})
		}
		nb.pacer.Drain() // a new invocation
		resp, err := nb.p.Handle(context.Background(), ev)
		if err != nil || len(resp.BatchItemFailures) > 0 {
			nb.b.Fatalf("night %s batch %d: %v %+v", d, i/localsqs.MaxBatch, err, resp.BatchItemFailures)
		}
	}
	r := nightResult{calls: nb.srv.Calls() - calls0, throttled: nb.srv.Throttled() - throttled0, stored: nb.stored - stored0,
		market: nb.clock.Now().Sub(start)}
	var times []time.Time
	for _, q := range nb.srv.Requests()[calls0:] {
		times = append(times, q.Time)
	}
	r.maxPerMinute = fakepolygon.MaxInWindow(times, time.Minute-time.Nanosecond)
	if nb.units != nil {
		w, rd := nb.units.totals()
		r.wcu, r.rcu = w-w0, rd-r0
	}
	if r.stored != nb.n {
		nb.b.Fatalf("night %s: %d rows stored, want %d", d, r.stored, nb.n)
	}
	return r
}

// capacity wraps the DynamoDB client: every call asks for its consumed
// capacity (ReturnConsumedCapacity TOTAL, as dynalite computes it from the
// items' sizes) and sums it, writes and reads apart.
type capacity struct {
	client   *dynamodb.Client
	mu       sync.Mutex
	wcu, rcu float64
}

var (
	_ bardb.DynamoDBAPI    = (*capacity)(nil)
	_ tickerdb.DynamoDBAPI = (*capacity)(nil)
)

func (c *capacity) totals() (float64, float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wcu, c.rcu
}

func (c *capacity) add(write bool, cc ...types.ConsumedCapacity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range cc {
		if write {
			c.wcu += aws.ToFloat64(x.CapacityUnits)
		} else {
			c.rcu += aws.ToFloat64(x.CapacityUnits)
		}
	}
}

func one(cc *types.ConsumedCapacity) []types.ConsumedCapacity {
	if cc == nil {
		return nil
	}
	return []types.ConsumedCapacity{*cc}
}

const total = types.ReturnConsumedCapacityTotal

func (c *capacity) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	in.ReturnConsumedCapacity = total
	out, err := c.client.GetItem(ctx, in, opts...)
	if err == nil {
		c.add(false, one(out.ConsumedCapacity)...)
	}
	return out, err
}

func (c *capacity) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	in.ReturnConsumedCapacity = total
	out, err := c.client.PutItem(ctx, in, opts...)
	if err == nil {
		c.add(true, one(out.ConsumedCapacity)...)
	}
	return out, err
}

func (c *capacity) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	in.ReturnConsumedCapacity = total
	out, err := c.client.Query(ctx, in, opts...)
	if err == nil {
		c.add(false, one(out.ConsumedCapacity)...)
	}
	return out, err
}

func (c *capacity) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	in.ReturnConsumedCapacity = total
	out, err := c.client.BatchWriteItem(ctx, in, opts...)
	if err == nil {
		c.add(true, out.ConsumedCapacity...)
	}
	return out, err
}

func (c *capacity) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	in.ReturnConsumedCapacity = total
	out, err := c.client.BatchGetItem(ctx, in, opts...)
	if err == nil {
		c.add(false, out.ConsumedCapacity...)
	}
	return out, err
}

// memStores is an in-memory ticker-data and daily-bars store, for the night
// of 10,000 tickers (dynalite would take many minutes to hold 2.8 million
// bars): the same semantics as tickerdb.Store and bardb.Store, no capacity.
type memStores struct {
	mu     sync.Mutex
	rows   map[string]bool // ticker|date
	bars   map[string][]marketdata.Bar
	meta   map[string]bardb.Meta
	splits map[string]*marketdata.Split
	days   map[string]bardb.DayState
	market bardb.MarketState
}

func newMemStores() *memStores {
	return &memStores{rows: map[string]bool{}, bars: map[string][]marketdata.Bar{}, meta: map[string]bardb.Meta{},
		splits: map[string]*marketdata.Split{}, days: map[string]bardb.DayState{}}
}

func (m *memStores) Put(_ context.Context, r tickerdb.Row) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[r.Ticker+"|"+r.AsOf] = true
	return nil
}

func (m *memStores) Has(_ context.Context, ticker, date string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rows[ticker+"|"+date], nil
}

func (m *memStores) History(_ context.Context, ticker, from string) (bardb.History, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := bardb.History{Meta: m.meta[ticker], Split: m.splits[ticker]}
	for _, b := range m.bars[ticker] {
		if b.Date >= from {
			h.Bars = append(h.Bars, b)
		}
	}
	return h, nil
}

func (m *memStores) HasHistory(_ context.Context, ticker string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.bars[ticker]) > 0, nil
}

func (m *memStores) PutDayBars(_ context.Context, bars map[string]marketdata.Bar) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for t, b := range bars {
		m.bars[t] = merge(m.bars[t], b)
	}
	return nil
}

func merge(bars []marketdata.Bar, b marketdata.Bar) []marketdata.Bar {
	i, found := slices.BinarySearchFunc(bars, b.Date, func(x marketdata.Bar, d string) int {
		switch {
		case x.Date < d:
			return -1
		case x.Date > d:
			return 1
		}
		return 0
	})
	if found {
		bars[i] = b
		return bars
	}
	return slices.Insert(bars, i, b)
}

func (m *memStores) ReplaceHistory(_ context.Context, ticker string, r bardb.Replace) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := m.bars[ticker][:0:0]
	remove := map[string]bool{}
	for _, d := range r.Remove {
		remove[d] = true
	}
	for _, b := range m.bars[ticker] {
		if !remove[b.Date] {
			keep = append(keep, b)
		}
	}
	for _, b := range r.Bars {
		keep = merge(keep, b)
	}
	m.bars[ticker] = keep
	m.meta[ticker] = r.Meta
	delete(m.splits, ticker)
	return nil
}

func (m *memStores) PutMeta(_ context.Context, ticker string, meta bardb.Meta) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meta[ticker] = meta
	return nil
}

func (m *memStores) MarkSplits(_ context.Context, splits []marketdata.Split) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range splits {
		s := s
		m.splits[s.Ticker] = &s
	}
	return nil
}

func (m *memStores) Day(_ context.Context, date string) (bardb.DayState, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.days[date]
	return d, ok, nil
}

func (m *memStores) PutDay(_ context.Context, d bardb.DayState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.days[d.Date] = d
	return nil
}

func (m *memStores) Market(context.Context) (bardb.MarketState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.market, nil
}

func (m *memStores) PutMarket(_ context.Context, s bardb.MarketState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.market = s
	return nil
}
