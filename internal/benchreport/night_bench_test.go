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
	"github.com/zsmseven/backend/internal/devstack/memstore"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pacing"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// rawNights is this design (decision 0004) as BenchmarkNights drives it:
// processTicker as deployed — the real Polygon client paced at the free
// plan's 5 calls per minute against the local Polygon rate-limited at 5 calls
// in any sliding minute, sharing a fake clock — handed the night's messages
// in batches of 10 with the pacer drained per batch, as each invocation
// does, and the messages it queues itself (the fill, then the tickers again)
// behind them, as the FIFO queue would. The stores are the real ones on
// dynalite (500 tickers, capacity counted) or in memory (10,000).
type rawNights struct {
	n       int
	tickers []string
	clock   *fakeclock.Clock
	srv     *fakepolygon.Server
	pacer   *pacing.Limiter
	p       *pipeline.ProcessTicker
	db      *dynamodb.Client
	tables  []string
	units   *capacity
	latest  func(ticker string) (pipeline.Row, bool)

	mu       sync.Mutex
	queue    []queue.Message
	complete int // complete rows written
	runs     int
}

func newNightsDesign(b *testing.B, n int) nightsDesign {
	b.Helper()
	d := &rawNights{n: n, clock: fakeclock.New(nightsAt(nightsSteps[0].date))}
	for i := range n {
		d.tickers = append(d.tickers, ticker(i))
	}
	slices.Sort(d.tickers)
	d.srv = fakepolygon.New(b, fakepolygon.Options{Key: benchKey, Now: d.clock.Now, RateLimit: deploy.DefaultPolygonCallsPerMinute,
		Window: time.Minute, Universe: d.tickers})
	d.pacer = pacing.New(deploy.DefaultPolygonCallsPerMinute, pacing.Options{Now: d.clock.Now, Sleep: d.clock.Sleep})
	client, err := polygon.New(polygon.Options{BaseURL: d.srv.URL, APIKey: polygon.StaticKey(benchKey), Pacer: d.pacer,
		Now: d.clock.Now, Sleep: d.clock.Sleep, Retry: retry.Policy{Attempts: 4}})
	if err != nil {
		b.Fatal(err)
	}
	var rows pipeline.Rows
	var history pipeline.History
	if n <= 500 {
		env := dynalitetest.New(b, deploy.TickerData, deploy.DailyBars)
		d.db = env.Client
		d.units = &capacity{client: env.Client}
		d.tables = []string{deploy.TickerData.Name(env.Stage), deploy.DailyBars.Name(env.Stage)}
		store := tickerdb.NewStore(d.units, d.tables[0])
		rows = processticker.Rows(store)
		d.latest = func(t string) (pipeline.Row, bool) {
			r, ok, err := store.Latest(context.Background(), t)
			return pipeline.Row{Ticker: r.Ticker, Snapshot: r.Snapshot, Partial: r.Partial}, ok && err == nil
		}
		history = bardb.NewStore(d.units, d.tables[1])
	} else {
		mem := memstore.NewRows()
		rows, d.latest = mem, mem.Latest
		history = memstore.NewHistory()
	}
	d.p = &pipeline.ProcessTicker{Market: client, Rows: rows, History: history, Publisher: d, Source: "polygon", Now: d.clock.Now,
		Observer: func(r pipeline.Record) {
			if r.Outcome == pipeline.Stored && !r.Row.Partial {
				d.mu.Lock()
				d.complete++
				d.mu.Unlock()
			}
		}}
	return d
}

// Publish queues msgs at the tail of the night's queue.
func (d *rawNights) Publish(_ context.Context, msgs []queue.Message) (queue.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queue = append(d.queue, msgs...)
	return queue.Result{Queued: len(msgs)}, nil
}

func (d *rawNights) night(b *testing.B, date string) nightCost {
	b.Helper()
	if at := nightsAt(date); at.After(d.clock.Now()) {
		d.clock.Set(at)
	} else {
		d.clock.Advance(time.Minute)
	}
	calls0, throttled0 := d.srv.Calls(), d.srv.Throttled()
	d.mu.Lock()
	complete0 := d.complete
	d.mu.Unlock()
	var w0, r0 float64
	if d.units != nil {
		w0, r0 = d.units.totals()
	}
	d.runs++
	runID := fmt.Sprint("raw-", d.runs)
	at := d.clock.Now()
	msgs := []queue.Message{queue.NewDay(date, d.tickers, "tickers", 1, 1, runID, at)}
	for _, t := range d.tickers {
		msgs = append(msgs, queue.NewTicker(t, date, runID, at))
	}
	d.mu.Lock()
	d.queue = msgs
	d.mu.Unlock()
	var c nightCost
	start := d.clock.Now()
	for i := 0; ; i++ {
		d.mu.Lock()
		batch := d.queue[:min(localsqs.MaxBatch, len(d.queue))]
		d.queue = d.queue[len(batch):]
		d.mu.Unlock()
		if len(batch) == 0 {
			break
		}
		var ev events.SQSEvent
		for j, m := range batch {
			body, err := m.Encode()
			if err != nil {
				b.Fatal(err)
			}
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint(runID, "-", i, "-", j), Body: body,
				EventSourceARN: localsqs.ARN("ticker-processing-queue-bench.fifo")})
		}
		d.pacer.Drain() // a new invocation
		t0 := d.clock.Now()
		resp, err := d.p.Handle(context.Background(), ev)
		if err != nil || len(resp.BatchItemFailures) > 0 {
			b.Fatalf("night %s batch %d: %v %+v", date, i, err, resp.BatchItemFailures)
		}
		c.longest = max(c.longest, d.clock.Now().Sub(t0))
		c.invocations++
	}
	c.market = d.clock.Now().Sub(start)
	c.calls, c.throttled = d.srv.Calls()-calls0, d.srv.Throttled()-throttled0
	var times []time.Time
	for _, q := range d.srv.Requests()[calls0:] {
		times = append(times, q.Time)
		if q.Kind == fakepolygon.KindAggregates {
			c.perTickerCall++
		}
	}
	c.maxPerMinute = fakepolygon.MaxInWindow(times, time.Minute-time.Nanosecond)
	d.mu.Lock()
	c.rows = d.complete - complete0
	d.mu.Unlock()
	if d.units != nil {
		w, r := d.units.totals()
		c.units, c.wcu, c.rcu = true, w-w0, r-r0
		for _, t := range d.tables {
			bytes, items, err := nightsTableBytes(context.Background(), d.db, t)
			if err != nil {
				b.Fatal(err)
			}
			c.storage += bytes
			c.storageItems += items
		}
	}
	return c
}

// lateSplit scripts the split on the local Polygon, which prints the prices
// before it at their level before the split and lists it from listed on.
func (d *rawNights) lateSplit(_ *testing.B, ticker, date, listed string, from, to float64) {
	d.srv.AddSplit(fakepolygon.Split{Ticker: ticker, Date: date, From: from, To: to, Listed: listed})
}

func (d *rawNights) rowMatches(b *testing.B, ticker, date string) (bool, string) {
	b.Helper()
	row, ok := d.latest(ticker)
	if !ok || row.Partial {
		return false, fmt.Sprintf("no complete row (%+v)", row)
	}
	w := coverage.Window(marketdata.NYSE(), date, indicators.Lookback)
	wire, err := d.srv.Bars(ticker, w[0], date)
	if err != nil {
		b.Fatal(err)
	}
	bars := make([]marketdata.Bar, len(wire))
	for i, x := range wire {
		bars[i] = marketdata.Bar{Date: marketdata.TradingDate(x.T), Start: time.UnixMilli(x.T).UTC(), Open: x.O, High: x.H, Low: x.L, Close: x.C, Volume: x.V}
	}
	want, err := indicators.Compute(bars)
	if err != nil {
		b.Fatal(err)
	}
	return nightsSameSnapshot(row.Snapshot, want)
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

func (c *capacity) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	in.ReturnConsumedCapacity = total
	out, err := c.client.UpdateItem(ctx, in, opts...)
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
