package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/pacing"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

const benchKey = "bench-polygon-key-0123456789"

// consumer is the processTicker use case wired as deployed — the real
// Polygon client against srv, the real DynamoDB stores on dynalite — with the
// given pacing. The messages of batches (v1, no day message) make each
// ticker fetch its own bars: one call each.
func consumer(b *testing.B, srv *fakepolygon.Server, callsPerMinute int) *pipeline.ProcessTicker {
	b.Helper()
	env := dynalitetest.New(b, deploy.TickerData, deploy.DailyBars)
	client, err := polygon.New(polygon.Options{BaseURL: srv.URL, APIKey: polygon.StaticKey(benchKey), Pacer: pacing.New(callsPerMinute, pacing.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	return &pipeline.ProcessTicker{Market: client, Rows: processticker.Rows(tickerdb.NewStore(env.Client, deploy.TickerData.Name(env.Stage))),
		History: bardb.NewStore(env.Client, deploy.DailyBars.Name(env.Stage)), Source: "polygon"}
}

// batches are the SQS events for n tickers, ten records each, as the FIFO
// event source delivers them.
func batches(b *testing.B, n int) []events.SQSEvent {
	b.Helper()
	var out []events.SQSEvent
	var ev events.SQSEvent
	for i := range n {
		body, err := queue.New(ticker(i), "bench", time.Now()).Encode()
		if err != nil {
			b.Fatal(err)
		}
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("m%d", i), Body: body,
			EventSourceARN: localsqs.ARN("ticker-processing-queue-bench.fifo")})
		if len(ev.Records) == localsqs.MaxBatch || i == n-1 {
			out = append(out, ev)
			ev = events.SQSEvent{}
		}
	}
	return out
}

func handle(b *testing.B, p *pipeline.ProcessTicker, evs []events.SQSEvent) {
	b.Helper()
	for _, ev := range evs {
		resp, err := p.Handle(context.Background(), ev)
		if err != nil || len(resp.BatchItemFailures) > 0 {
			b.Fatalf("batch not processed: %v %+v", err, resp.BatchItemFailures)
		}
	}
}

// BenchmarkCallsPerTicker counts the market-data requests the local Polygon
// receives per ticker processed (the old system made 3: price, RSI and SMA
// endpoints separately).
func BenchmarkCallsPerTicker(b *testing.B) {
	const n = 20
	for b.Loop() {
		srv := fakepolygon.New(b, fakepolygon.Options{Key: benchKey})
		handle(b, consumer(b, srv, 0), batches(b, n))
		b.ReportMetric(float64(srv.Calls())/n, "calls/ticker")
	}
}

// BenchmarkPacing sends 60 tickers through the consumer against a local
// Polygon that answers 429 beyond its limit. The ideal wall time is
// 60 ÷ 600/min = 6 s. The client is configured at the plan's rate, 600 calls
// per minute, and spaces calls pacing.SafetyMargin (2 %) wider. Two cases:
//
//   - minute: at most 600 calls in any sliding minute;
//   - scaled: at most 5 calls in any sliding half second — the free plan's
//     5 calls per minute with rate and window both scaled by 120, so a call
//     that lands early by timer or network jitter is refused as it would be
//     at 12 s spacing.
func BenchmarkPacing(b *testing.B) {
	const n = 60
	ideal := time.Duration(n) * time.Minute / 600
	for _, c := range []struct {
		name         string
		calls        int
		window       time.Duration
		clientPerMin int
	}{
		{"minute", 600, time.Minute, 600},
		{"scaled", 5, 500 * time.Millisecond, 600},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				srv := fakepolygon.New(b, fakepolygon.Options{Key: benchKey, RateLimit: c.calls, Window: c.window})
				p := consumer(b, srv, c.clientPerMin)
				evs := batches(b, n)
				start := time.Now()
				handle(b, p, evs)
				wall := time.Since(start)
				b.ReportMetric(wall.Seconds()/ideal.Seconds(), "wall/ideal")
				b.ReportMetric(wall.Seconds(), "wall-s")
				b.ReportMetric(float64(srv.Throttled()), "429s")
				b.ReportMetric(float64(srv.MaxCallsIn(c.window)), "max-calls/window")
				b.ReportMetric(float64(srv.Calls()), "calls")
			}
		})
	}
}
