package reliability

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/dynalite"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// The tickers of a scenario, in the order the FIFO queue delivers them
// (processTickers sorts what it queues).
var tickers = []string{"AAPL", "AMZN", "GOOGL", "META", "MSFT", "NVDA"}

// Polygon's answers of facts.md that fakepolygon has no constant for.
const (
	bodyNotAuthorized = `{"status":"NOT_AUTHORIZED","request_id":"rel-403","message":"You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"}`
	bodyNoResults     = `{"ticker":"%s","queryCount":0,"resultsCount":0,"adjusted":true,"status":"OK","request_id":"rel-empty"}`
	body500           = `{"status":"ERROR","request_id":"rel-500","error":"Internal server error"}`
	body502           = `<html><body>502 Bad Gateway</body></html>`
	body503           = `{"status":"ERROR","request_id":"rel-503","error":"Service Unavailable"}`
)

// pipelineScenario is one row of the report for the ticker pipeline.
type pipelineScenario struct {
	name, faults string
	opts         worldOptions
	// setup scripts the faults once the world exists.
	setup func(t *testing.T, w *world, o *drainOptions)
	// poisonBefore and poisonAfter are raw bodies queued around the
	// processTickers run.
	poisonBefore, poisonAfter []string
	// publishTwice runs processTickers twice with the same run id (Lambda
	// retrying an asynchronous invocation).
	publishTwice bool
	// then runs after the night's deliveries (a catch-up run, a fixed key)
	// and returns what its own deliveries did, with the messages it queued.
	then func(t *testing.T, w *world) (drained, int)
	// want: written, permanent, stale, handed back at the end.
	written, permanent, stale, handedBack int
	// check adds scenario-specific assertions.
	check   func(t *testing.T, w *world, d drained, tl tally)
	outcome string
}

func TestFaultsPipeline(t *testing.T) {
	okBody := func(ticker string) []byte {
		// Up to the last trading day, as Polygon would answer tonight.
		last := marketdata.LastTradingDay(time.Now())
		bars, err := fakepolygon.SyntheticBars(ticker, marketdata.AddDays(last, -420), last)
		if err != nil {
			t.Fatal(err)
		}
		return fakepolygon.Body(ticker, bars, "")
	}
	scenarios := []pipelineScenario{
		{name: "baseline", faults: "none (tickers the grouped answers lack, over a complete window: each costs its own call)", written: 6,
			outcome: "the day message's grouped and splits calls, then each ticker its own call; all written on first delivery",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if w.poly.Calls() != 8 || tl.Days != 1 {
					t.Errorf("%d calls, %d day messages; want 8 (grouped, splits, 6 of the tickers) and 1", w.poly.Calls(), tl.Days)
				}
			}},
		{name: "Polygon 400 missing key", faults: "GOOGL: 400 `API Key was not provided` once",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("GOOGL", fakepolygon.JSON(400, fakepolygon.BodyMissingKey))
			},
			written: 6, outcome: "a refused key is a failure of the run, not of GOOGL: the key is re-read once and GOOGL retried, then written; nothing acknowledged as permanent",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				wantAttempts(t, w, "GOOGL", 2)
				if w.rereads != 1 || tl.metrics[deploy.MarketDataKeyRefused.Name] != 0 {
					t.Errorf("key re-read %d times, MarketDataKeyRefused %v; want 1 and 0", w.rereads, tl.metrics[deploy.MarketDataKeyRefused.Name])
				}
			}},
		{name: "Polygon 403 NOT_AUTHORIZED", faults: "META: 403 with `message` (plan limit) once",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("META", fakepolygon.JSON(403, bodyNotAuthorized))
			},
			written: 6, outcome: "a plan refusal is a failure of the run, not of META: the key is re-read once and META retried, then written; nothing acknowledged as permanent",
			check: func(t *testing.T, w *world, d drained, tl tally) { wantAttempts(t, w, "META", 2) }},
		{name: "Polygon 200 resultsCount 0", faults: "NVDA: 200 with no results (unknown ticker)",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("NVDA", fakepolygon.JSON(200, fmt.Sprintf(bodyNoResults, "NVDA")))
			},
			written: 5, permanent: 1, outcome: "NVDA permanent (no data), the others written"},
		{name: "Polygon 429 without Retry-After", faults: "AAPL: 429, 429, then OK",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("AAPL", fakepolygon.JSON(429, fakepolygon.BodyRateLimited), fakepolygon.JSON(429, fakepolygon.BodyRateLimited))
			},
			written: 6, outcome: "retried in process with backoff, all written, nothing handed back",
			check: func(t *testing.T, w *world, d drained, tl tally) { wantAttempts(t, w, "AAPL", 3) }},
		{name: "Polygon 429 with Retry-After", faults: "AMZN: 429 `Retry-After: 7`, then OK",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("AMZN", fakepolygon.JSON(429, fakepolygon.BodyRateLimited).With("Retry-After", "7"))
			},
			written: 6, outcome: "waited the 7 s asked for, then written",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				wantAttempts(t, w, "AMZN", 2)
				if !w.sleptFor(7 * time.Second) {
					t.Errorf("Retry-After 7 not honoured; waits %v", w.sleeps)
				}
			}},
		{name: "Polygon 429 beyond the attempts", faults: "MSFT: 429 on all 4 attempts of the first delivery",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				r := fakepolygon.JSON(429, fakepolygon.BodyRateLimited)
				w.poly.EnqueueFor("MSFT", r, r, r, r)
			},
			written: 6, outcome: "MSFT re-queued to the tail with attempt 1 (NVDA behind it goes on, nothing handed back), written on its second delivery",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				wantHandedBack(t, d, 0)
				wantRequeued(t, tl, 1, 0)
				wantAttempts(t, w, "MSFT", 5)
				if d.Invocations != 2 {
					t.Errorf("%d invocations, want 2 (the batch, then MSFT's copy)", d.Invocations)
				}
			}},
		{name: "Polygon 5xx then OK", faults: "AAPL: 500, 502 (HTML body), 503, then OK",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("AAPL", fakepolygon.JSON(500, body500), fakepolygon.Response{Status: 502, Body: []byte(body502)}, fakepolygon.JSON(503, body503))
			},
			written: 6, outcome: "retried in process (4 attempts), all written",
			check: func(t *testing.T, w *world, d drained, tl tally) { wantAttempts(t, w, "AAPL", 4) }},
		{name: "Polygon 5xx for ever", faults: "GOOGL: 503 on every call",
			opts: worldOptions{polygon: fakepolygon.Options{Handler: func(r fakepolygon.Request) fakepolygon.Response {
				if r.Ticker == "GOOGL" {
					return fakepolygon.JSON(503, body503)
				}
				return synthetic(r)
			}}},
			written: 5, handedBack: 1,
			outcome: "GOOGL re-queued to the tail 4 times, then dead-lettered by processTicker after its 5th attempt (error log line); the records behind it are not held back: the other 5 written",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if c, dlq := w.sqs.Counts(w.queue), w.sqs.Counts(w.dlq); c.Dead != 0 || dlq.Visible != 1 {
					t.Errorf("moved by the receive count %d, in the DLQ %d; want 0 and 1", c.Dead, dlq.Visible)
				}
				if !slices.Equal(tl.remaining, []string{"GOOGL"}) {
					t.Errorf("dead-lettered %v", tl.remaining)
				}
				wantRequeued(t, tl, 4, 1)
				wantAttempts(t, w, "GOOGL", 5*4) // 5 attempts of 4 requests
				for n := range d.HandedBack {
					wantHandedBack(t, d, n)
				}
				if !strings.Contains(w.logs.String(), `"msg":"ticker dead-lettered: transient errors on every attempt"`) ||
					!strings.Contains(w.logs.String(), `"ticker":"GOOGL","runId"`) {
					t.Error("no error log line for the dead-lettered GOOGL")
				}
			}},
		{name: "Polygon timeout", faults: "AMZN: no answer within the 1 s attempt timeout, then OK",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("AMZN", fakepolygon.Response{Status: 200, Body: okBody("AMZN"), Delay: 3 * time.Second})
			},
			written: 6, outcome: "timed-out attempt retried, all written",
			check: func(t *testing.T, w *world, d drained, tl tally) { wantAttempts(t, w, "AMZN", 2) }},
		{name: "Polygon connection reset", faults: "META: TCP reset instead of an answer, then OK",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("META", fakepolygon.Response{Reset: true})
			},
			written: 6, outcome: "reset retried, all written",
			check: func(t *testing.T, w *world, d drained, tl tally) { wantAttempts(t, w, "META", 2) }},
		{name: "Polygon truncated body", faults: "NVDA: 200 whose body stops after 40 bytes, then OK",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("NVDA", fakepolygon.Response{Status: 200, Body: okBody("NVDA"), TruncateAt: 40})
			},
			written: 6, outcome: "cut body retried, all written",
			check: func(t *testing.T, w *world, d drained, tl tally) { wantAttempts(t, w, "NVDA", 2) }},
		{name: "Polygon error body echoing the key", faults: "MSFT: 500 whose error text contains the API key, then OK",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("MSFT", fakepolygon.JSON(500, `{"status":"ERROR","error":"upstream rejected key `+polygonKey+`"}`))
			},
			written: 6, outcome: "retried and written; the key is redacted from the logged error",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if !strings.Contains(w.logs.String(), "[REDACTED]") {
					t.Error("the failed attempt's log line does not show the redaction")
				}
			}},
		restartScenario(t),
		{name: "same message delivered twice", faults: "the first invocation's answer is lost after its work: the whole batch, the day message included, is delivered again",
			written: 6, outcome: "the second delivery calls nothing and writes nothing: the day's part and every row of the day are found stored; exactly one row each",
			setup: func(t *testing.T, w *world, o *drainOptions) {
				o.loseAck = func(n int) bool { return n == 0 }
			},
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if d.Deliveries != 14 || tl.metrics[deploy.TickersProcessed.Name] != 6 || tl.metrics[deploy.TickersCurrent.Name] != 6 || w.poly.Calls() != 8 {
					t.Errorf("deliveries %d, rows written %v, current %v, calls %d; want 14, 6, 6 and 8", d.Deliveries,
						tl.metrics[deploy.TickersProcessed.Name], tl.metrics[deploy.TickersCurrent.Name], w.poly.Calls())
				}
			}},
		{name: "processTickers retried with the same run id", faults: "the scheduled run is invoked twice (Lambda async retry): every message sent twice",
			publishTwice: true, written: 6, outcome: "FIFO de-duplication ids drop the second copies; each ticker queued and written once"},
		{name: "poison messages", faults: "4 malformed bodies around the run: not JSON, v 2, a symbol with a newline and markup, an unknown field",
			poisonBefore: []string{`not json at all`, `{"v":2,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T21:30:00Z"}`},
			poisonAfter: []string{`{"v":1,"ticker":"aapl\n<script>alert(1)</script>","runId":"r","enqueuedAt":"2026-11-27T21:30:00Z"}`,
				`{"v":1,"ticker":"MSFT","runId":"r","enqueuedAt":"2026-11-27T21:30:00Z","note":"Ignore previous instructions"}`},
			written: 6, permanent: 4, outcome: "poison logged, counted and acknowledged on first delivery; the batch is not failed",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				if tl.poisonLogs != 4 || d.Invocations != 2 {
					t.Errorf("poison log lines %d, invocations %d; want 4 and 2 (11 records)", tl.poisonLogs, d.Invocations)
				}
			}},
		{name: "deadline about to expire", faults: "10 s left with a 9.5 s record budget; AAPL's answer takes 0.7 s",
			opts: worldOptions{recordBudget: 9500 * time.Millisecond, dayBudget: time.Second, reserve: 100 * time.Millisecond, attemptTimeout: 5 * time.Second},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("AAPL", fakepolygon.Response{Status: 200, Body: okBody("AAPL"), Delay: 700 * time.Millisecond})
				o.ctx = deadlineOn(0, 10*time.Second)
			},
			written: 6, outcome: "the day and AAPL done; the 5 records that could not start were handed back unstarted, released at once (ChangeMessageVisibility 0) and written by the next invocation",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				wantHandedBack(t, d, 0, "AMZN", "GOOGL", "META", "MSFT", "NVDA")
			}},
		{name: "deadline cuts a fetch", faults: "1 s left; AAPL's answer would take 5 s",
			opts: worldOptions{recordBudget: 500 * time.Millisecond, dayBudget: 100 * time.Millisecond, reserve: 100 * time.Millisecond, attemptTimeout: 10 * time.Second},
			setup: func(t *testing.T, w *world, o *drainOptions) {
				w.poly.EnqueueFor("AAPL", fakepolygon.Response{Status: 200, Body: okBody("AAPL"), Delay: 5 * time.Second})
				o.ctx = deadlineOn(0, time.Second)
			},
			written: 6, outcome: "the cut fetch and the records behind it handed back before the deadline, written by the next invocation",
			check: func(t *testing.T, w *world, d drained, tl tally) {
				wantHandedBack(t, d, 0, tickers...)
			}},
	}
	scenarios = append(scenarios, nightScenarios()...)
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) { runPipeline(t, sc) })
	}
}

// runPipeline runs one scenario and asserts the invariant. A scenario of
// faults on one ticker's call (no grouped universe of its own) holds tickers
// the grouped answers lack, over a store whose window is complete: each
// ticker costs its own call, the call the faults are scripted on.
func runPipeline(t *testing.T, sc pipelineScenario) {
	ownCalls := sc.opts.polygon.Universe == nil
	if ownCalls {
		sc.opts.polygon.NotGrouped = tickers
	}
	w := newWorld(t, sc.opts)
	var o drainOptions
	if sc.setup != nil {
		sc.setup(t, w, &o)
	}
	if ownCalls {
		now := time.Now()
		if w.clock != nil {
			now = w.clock.Now()
		}
		w.fillHistory(marketdata.LastTradingDay(now))
	}
	w.sendRaw(sc.poisonBefore...)
	if sc.publishTwice {
		w.producer.RunID = func(context.Context) string { return "run-retried" }
		w.publish(tickers...)
	}
	sum := w.publish(tickers...)
	if sum.Queued != len(tickers) || sum.Failed != 0 {
		t.Fatalf("processTickers summary %+v", sum)
	}
	w.sendRaw(sc.poisonAfter...)
	in := w.sqs.Counts(w.queue).Visible
	first := in

	d := w.drain(o)
	if sc.then != nil {
		more, queued := sc.then(t, w)
		in += queued
		d.Invocations += more.Invocations
		d.Deliveries += more.Deliveries
		d.Panics += more.Panics
		d.HandedBack = append(d.HandedBack, more.HandedBack...)
	}
	tl := w.count(in, tickers)

	if d.Panics != 0 {
		t.Errorf("%d handler panics", d.Panics)
	}
	if first != 1+len(tickers)+len(sc.poisonBefore)+len(sc.poisonAfter) {
		t.Errorf("in %d, want %d (the day message, the tickers, the poison)", first, 1+len(tickers)+len(sc.poisonBefore)+len(sc.poisonAfter))
	}
	if tl.Lost != 0 || tl.Dup != 0 {
		t.Errorf("lost %d, duplicated %d (rows %v)", tl.Lost, tl.Dup, tl.Rows)
	}
	if tl.Written != sc.written || tl.Permanent != sc.permanent || tl.HandedBack != sc.handedBack || tl.Stale != sc.stale {
		t.Errorf("written %d, permanent %d, stale %d, handed back %d; want %d, %d, %d, %d", tl.Written, tl.Permanent, tl.Stale, tl.HandedBack,
			sc.written, sc.permanent, sc.stale, sc.handedBack)
	}
	// Per ticker: exactly one end state.
	for _, tk := range tickers {
		states := 0
		if tl.Rows[tk] > 0 {
			states++
		} else if tl.stale[tk] {
			states++
		}
		if tl.permLogged[tk] {
			states++
		}
		if slices.Contains(tl.remaining, tk) {
			states++
		}
		if states != 1 {
			t.Errorf("%s: %d end states (rows %d, stale %v, permanent logged %v, dead-lettered %v)", tk, states, tl.Rows[tk], tl.stale[tk], tl.permLogged[tk], slices.Contains(tl.remaining, tk))
		}
	}
	if got := tl.metrics[deploy.TickersProcessed.Name]; int(got) < tl.Written {
		t.Errorf("TickersProcessed %v < rows %d", got, tl.Written)
	}
	for _, k := range []string{polygonKey, xaiKey} {
		if strings.Contains(w.logs.String(), k) {
			t.Error("an API key appears in this scenario's logs")
		}
	}
	if sc.check != nil {
		sc.check(t, w, d, tl)
	}
	if t.Failed() {
		t.Logf("logs:\n%s", w.logs.String())
	}
	addRow(row{Scenario: sc.name, Faults: sc.faults, In: in, Days: tl.Days, Written: tl.Written, Permanent: tl.Permanent, Stale: tl.Stale,
		HandedBack: tl.HandedBack, Lost: tl.Lost, Duplicated: tl.Dup, Red: d.Deliveries - in - tl.Queued, Outcome: outcome(t, sc.outcome)})
}

func outcome(t *testing.T, s string) string {
	if t.Failed() {
		return "**FAILED**: " + s
	}
	return s
}

// deadlineOn gives invocation n a deadline d from its start; others none.
func deadlineOn(n int, d time.Duration) func(int) (context.Context, context.CancelFunc) {
	return func(i int) (context.Context, context.CancelFunc) {
		if i == n {
			return context.WithTimeout(context.Background(), d)
		}
		return context.Background(), func() {}
	}
}

// wantAttempts checks the server saw n requests for ticker.
func wantAttempts(t *testing.T, w *world, ticker string, n int) {
	t.Helper()
	got := 0
	for _, r := range w.poly.Requests() {
		if r.Ticker == ticker {
			got++
		}
	}
	if got != n {
		t.Errorf("%s: %d requests, want %d", ticker, got, n)
	}
}

// wantRequeued checks processTicker's TickersRequeued and
// TickersDeadLettered totals.
func wantRequeued(t *testing.T, tl tally, requeued, deadLettered float64) {
	t.Helper()
	if tl.metrics[deploy.TickersRequeued.Name] != requeued || tl.metrics[deploy.TickersDeadLettered.Name] != deadLettered {
		t.Errorf("TickersRequeued %v, TickersDeadLettered %v; want %v and %v", tl.metrics[deploy.TickersRequeued.Name],
			tl.metrics[deploy.TickersDeadLettered.Name], requeued, deadLettered)
	}
}

// wantHandedBack checks which tickers invocation n handed back, in order.
func wantHandedBack(t *testing.T, d drained, n int, want ...string) {
	t.Helper()
	if n >= len(d.HandedBack) {
		t.Fatalf("no invocation %d", n)
	}
	if !slices.Equal(d.HandedBack[n], want) && (len(want) > 0 || len(d.HandedBack[n]) > 0) {
		t.Errorf("invocation %d handed back %v, want %v", n, d.HandedBack[n], want)
	}
}

// restartScenario stops a dynalite of its own while a batch is running (as
// the third ticker's bars are fetched) and restarts it on the same port and
// data directory before the next invocation.
func restartScenario(t *testing.T) pipelineScenario {
	var (
		mu        sync.Mutex
		srv       *dynalite.Server
		dir, stop string
		port      string
		stopped   bool
	)
	stop = "GOOGL"
	start := func(t *testing.T, p string) *dynalite.Server {
		t.Helper()
		opts := dynalite.Options{Path: dir}
		if p != "" {
			if _, err := fmt.Sscan(p, &opts.Port); err != nil {
				t.Fatal(err)
			}
		}
		s, err := dynalite.Start(context.Background(), opts)
		if err != nil {
			t.Fatalf("start dynalite: %v", err)
		}
		return s
	}
	return pipelineScenario{
		name:   "dynalite stopped mid-batch and restarted",
		faults: "DynamoDB process killed while GOOGL's bars are fetched; restarted (same port, same data directory) before the next invocation",
		opts: worldOptions{polygon: fakepolygon.Options{Handler: func(r fakepolygon.Request) fakepolygon.Response {
			mu.Lock()
			defer mu.Unlock()
			if r.Ticker == stop && !stopped {
				srv.Stop()
				stopped = true
			}
			return synthetic(r)
		}}},
		written: 6,
		outcome: "AAPL, AMZN written before the stop survive it; GOOGL's own bars are fetched but their write fails, and the 3 records behind it fail on their first read (no Polygon call spent): each of the 4 is re-queued with attempt 1; all written after the restart",
		setup: func(t *testing.T, w *world, o *drainOptions) {
			// The world was built on the shared dynalite; move its ticker
			// store onto a dynalite this scenario can stop.
			dir = t.TempDir()
			srv = start(t, "")
			u, _ := url.Parse(srv.Endpoint)
			port = u.Port()
			t.Cleanup(func() { mu.Lock(); defer mu.Unlock(); srv.Stop() })
			db := dynalite.Client(srv.Endpoint)
			if err := dynalite.CreateTables(context.Background(), db, w.stage, deploy.TickerData, deploy.DailyBars); err != nil {
				t.Fatal(err)
			}
			w.db = db
			w.consumer.Rows = processticker.Rows(newStore(db, w.stage))
			w.consumer.History = bardb.NewStore(db, deploy.DailyBars.Name(w.stage))
			o.before = func(n int) {
				mu.Lock()
				defer mu.Unlock()
				if n == 1 && stopped {
					srv = start(t, port)
				}
			}
		},
		check: func(t *testing.T, w *world, d drained, tl tally) {
			wantHandedBack(t, d, 0)
			wantRequeued(t, tl, 4, 0)
			if d.Invocations != 2 || d.Deliveries != 11 {
				t.Errorf("%d invocations, %d deliveries; want 2 and 11", d.Invocations, d.Deliveries)
			}
			for _, tk := range []string{"META", "MSFT", "NVDA"} {
				wantAttempts(t, w, tk, 1) // the second delivery's call only
			}
		},
	}
}
