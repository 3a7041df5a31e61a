package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
)

var (
	errTransient = retry.Transient(errors.New("polygon: 503 Service Unavailable"), 0)
	errPermanent = retry.Permanent(errors.New("polygon: 403 NOT_AUTHORIZED"))
)

// mixedScript: MSFT fails transiently at the market, XYZ permanently, EMPTY
// returns no bars (no bar of the day: stale), BAD a series with a zero
// close; TSLA fails in the store.
func mixed() (*fakeMarket, *fakeStore) {
	m := &fakeMarket{script: map[string]func(context.Context) ([]marketdata.Bar, error){
		"MSFT":  func(context.Context) ([]marketdata.Bar, error) { return nil, errTransient },
		"XYZ":   func(context.Context) ([]marketdata.Bar, error) { return nil, errPermanent },
		"EMPTY": func(context.Context) ([]marketdata.Bar, error) { return nil, nil },
		"BAD": func(context.Context) ([]marketdata.Bar, error) {
			b := testBars(30)
			b[10].Close = 0
			return b, nil
		},
	}}
	s := &fakeStore{fail: map[string]error{"TSLA": errors.New("dynamodb: ProvisionedThroughputExceededException")}}
	return m, s
}

var mixedRecords = [][2]string{
	{"m1", body("AAPL")},
	{"m2", `{"ticker":"AAPL"}`}, // poison: no version
	{"m3", body("MSFT")},        // transient (market)
	{"m4", body("XYZ")},         // permanent
	{"m5", "not json at all"},   // poison
	{"m6", body("NVDA")},
	{"m7", body("TSLA")},  // transient (store)
	{"m8", body("EMPTY")}, // stale: no bar of the day
	{"m9", body("BAD")},   // permanent: invalid series
	{"m10", body("BRK.B")},
}

func newProcessor(m *fakeMarket, s *fakeStore, clock *fakeclock.Clock) (*pipeline.ProcessTicker, *bytes.Buffer, *bytes.Buffer) {
	var logs, emf bytes.Buffer
	p := &pipeline.ProcessTicker{Market: m, Rows: s, History: newMemHistory(), Source: "polygon", Metrics: metrics.New(&emf, "test"),
		Logger: logging.New(&logs, slog.LevelDebug), Now: clock.Now}
	return p, &logs, &emf
}

// emfValues decodes the one EMF line written by a flush.
func emfValues(t *testing.T, emf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(emf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d EMF lines, want 1: %s", len(lines), emf)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestHandleMixedBatch(t *testing.T) {
	tests := []struct {
		name       string
		arn        string
		handedBack []string
		fetched    []string
		metrics    map[string]float64
	}{
		{"standard queue: exactly the transient records", standardARN, []string{"m3", "m7"},
			[]string{"AAPL", "MSFT", "XYZ", "NVDA", "TSLA", "EMPTY", "BAD", "BRK.B"},
			map[string]float64{"TickersProcessed": 3, "PermanentFailures": 4, "TickersStale": 1, "TransientFailures": 2}},
		{"FIFO queue: the first transient record and everything after it", fifoARN, []string{"m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10"},
			[]string{"AAPL", "MSFT"},
			map[string]float64{"TickersProcessed": 1, "PermanentFailures": 1, "TransientFailures": 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, s := mixed()
			clock := fakeclock.New(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC))
			p, logs, emf := newProcessor(m, s, clock)
			resp, err := p.Handle(context.Background(), event(tt.arn, mixedRecords...))
			if err != nil {
				t.Fatalf("Handle returned a function error: %v", err)
			}
			if got := failedIDs(resp); !slices.Equal(got, tt.handedBack) {
				t.Errorf("batchItemFailures %v, want %v", got, tt.handedBack)
			}
			if got := m.tickers(); !slices.Equal(got, tt.fetched) {
				t.Errorf("fetched %v, want %v", got, tt.fetched)
			}
			doc := emfValues(t, emf)
			for name, want := range tt.metrics {
				if doc[name] != want {
					t.Errorf("metric %s = %v, want %v", name, doc[name], want)
				}
			}
			if !strings.Contains(logs.String(), `"messageId":"m2"`) || !strings.Contains(logs.String(), "poison message acknowledged") {
				t.Errorf("poison record not logged with its messageId:\n%s", logs)
			}
		})
	}
}

func TestHandleStoresOneRowPerTickerAndTradingDay(t *testing.T) {
	m, s := mixed()
	// 2026-11-27 02:00 UTC is 21:00 on Thursday 2026-11-26 in New York.
	clock := fakeclock.New(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC))
	p, _, _ := newProcessor(m, s, clock)
	ev := event(standardARN, [2]string{"a", body("AAPL")}, [2]string{"b", body("AAPL")})
	for range 2 { // a redelivery of the batch
		if _, err := p.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	// Thanksgiving: the last completed trading day is 2026-11-25, and the
	// window of its 253 sessions starts on 2025-11-24 (counted back over the
	// NYSE's published holidays by a script, outside this code).
	for _, c := range m.calls {
		if c != "AAPL 2025-11-24 2026-11-25" {
			t.Errorf("request %q, want AAPL 2025-11-24 2026-11-25", c)
		}
	}
	// The second record and the redelivered batch find the row of the day
	// stored: no call, no write.
	if len(m.calls) != 1 || s.puts != 1 || len(s.rows) != 1 {
		t.Fatalf("%d calls and %d puts left %d rows, want 1, 1 and 1", len(m.calls), s.puts, len(s.rows))
	}
	bars := testBars(300)
	var sum float64
	for _, b := range bars[len(bars)-50:] {
		sum += b.Close
	}
	for key, r := range s.rows {
		// The last bar is Wednesday 2026-11-25; 16:00 EST is 21:00 UTC.
		if key != "AAPL|2026-11-25T21:00:00Z" || r.AsOf != "2026-11-25" || r.Source != "polygon" || r.Bars != 300 {
			t.Errorf("row %s: %+v", key, r)
		}
		if r.Price != bars[len(bars)-1].Close || r.MA50 == nil || math.Abs(*r.MA50-sum/50) > 1e-9 || r.RSI == nil {
			t.Errorf("row values %+v (want price %v, MA50 %v)", r, bars[len(bars)-1].Close, sum/50)
		}
		if !r.FetchedAt.Equal(clock.Now()) {
			t.Errorf("fetchedAt %v", r.FetchedAt)
		}
	}
}

func TestHandleHandsBackWhatTheDeadlineLeavesNoTimeFor(t *testing.T) {
	for _, arn := range []string{standardARN, fifoARN} {
		t.Run(arn[strings.LastIndex(arn, "-")+1:], func(t *testing.T) {
			clock := fakeclock.New(time.Now())
			// Each fetch takes 30 s of (fake) time; a record needs 27 s;
			// 2 s are reserved. With 100 s left: records at 0, 30, 60 s
			// start (98, 68, 38 s left), the fourth (8 s left) does not.
			m := &fakeMarket{clock: clock, step: 30 * time.Second, today: true}
			s := &fakeStore{}
			p, logs, emf := newProcessor(m, s, clock)
			p.RecordBudget, p.Reserve = 27*time.Second, 2*time.Second
			ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(100*time.Second))
			defer cancel()
			var recs [][2]string
			for i, tk := range []string{"A", "B", "C", "D", "E"} {
				recs = append(recs, [2]string{fmt.Sprint("m", i+1), body(tk)})
			}
			resp, err := p.Handle(ctx, event(arn, recs...))
			if err != nil {
				t.Fatal(err)
			}
			if got := failedIDs(resp); !slices.Equal(got, []string{"m4", "m5"}) {
				t.Errorf("handed back %v, want [m4 m5]", got)
			}
			if len(s.rows) != 3 || len(m.calls) != 3 {
				t.Errorf("%d rows, %d fetches, want 3", len(s.rows), len(m.calls))
			}
			if !strings.Contains(logs.String(), "not enough time left") {
				t.Error("the hand-back is not logged")
			}
			if doc := emfValues(t, emf); doc["TransientFailures"] != 2.0 || doc["TickersProcessed"] != 3.0 {
				t.Errorf("metrics %v", doc)
			}
		})
	}
}

func TestHandleRecordCutByTheDeadlineIsHandedBack(t *testing.T) {
	// The fetch outlasts the invocation: it must end at the work deadline
	// (Reserve before Lambda's) and the record go back, not time out the
	// function.
	m := &fakeMarket{script: map[string]func(context.Context) ([]marketdata.Bar, error){
		"SLOW": func(ctx context.Context) ([]marketdata.Bar, error) { <-ctx.Done(); return nil, ctx.Err() },
	}}
	// Work stops Reserve (200 ms) before the 300 ms deadline.
	p := &pipeline.ProcessTicker{Market: m, Rows: &fakeStore{}, History: newMemHistory(), RecordBudget: time.Millisecond, Reserve: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	resp, err := p.Handle(ctx, event(standardARN, [2]string{"s1", body("SLOW")}, [2]string{"s2", body("AAPL")}))
	if err != nil {
		t.Fatal(err)
	}
	if got := failedIDs(resp); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("handed back %v, want [s1 s2]", got)
	}
	if got := m.tickers(); !slices.Equal(got, []string{"SLOW"}) {
		t.Errorf("fetched %v: a record started after the work deadline", got)
	}
}

func TestHandleWithRequeuerHandsBackARecordCutByTheDeadline(t *testing.T) {
	m := &fakeMarket{script: map[string]func(context.Context) ([]marketdata.Bar, error){
		"SLOW": func(ctx context.Context) ([]marketdata.Bar, error) { <-ctx.Done(); return nil, ctx.Err() },
	}}
	r := &fakeRequeuer{}
	v := &fakeVisibility{}
	p := &pipeline.ProcessTicker{Market: m, Rows: &fakeStore{}, History: newMemHistory(), Requeuer: r, Visibility: v, RecordBudget: time.Millisecond, Reserve: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ev := withGroup(event(fifoARN, [2]string{"s1", body("SLOW")}, [2]string{"s2", body("AAPL")}), "tickers")
	for i := range ev.Records {
		ev.Records[i].ReceiptHandle = "rh-" + ev.Records[i].MessageId
	}
	resp, err := p.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := failedIDs(resp); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("handed back %v, want [s1 s2]", got)
	}
	if len(r.requeued) != 0 || len(r.deadLettered) != 0 {
		t.Errorf("a record cut by the deadline was re-sent: %v %v", r.requeued, r.deadLettered)
	}
	// The cut record heads its FIFO group now: released at once, like the
	// one behind it, so the group does not wait out the visibility timeout.
	want := []queue.VisibilityChange{{ReceiptHandle: "rh-s1"}, {ReceiptHandle: "rh-s2"}}
	if !slices.Equal(v.changes, want) {
		t.Errorf("visibility changes %+v, want %+v", v.changes, want)
	}
}

// A transient failure the requeuer could not take over (the send failed)
// heads the FIFO group: it comes back after the retry delay, not after the
// queue's 18-minute visibility timeout.
func TestHandleReleasesATransientHeadOfTheGroupAfterTheRetryDelay(t *testing.T) {
	m := &fakeMarket{script: map[string]func(context.Context) ([]marketdata.Bar, error){
		"DOWN": func(context.Context) ([]marketdata.Bar, error) { return nil, errors.New("503") },
	}}
	v := &fakeVisibility{}
	p := &pipeline.ProcessTicker{Market: m, Rows: &fakeStore{}, History: newMemHistory(), Requeuer: &fakeRequeuer{err: errors.New("SQS down")}, Visibility: v}
	ev := withGroup(event(fifoARN, [2]string{"d1", body("DOWN")}), "tickers")
	ev.Records[0].ReceiptHandle = "rh-d1"
	resp, err := p.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := failedIDs(resp); !slices.Equal(got, []string{"d1"}) {
		t.Fatalf("handed back %v", got)
	}
	if len(v.changes) != 1 || v.changes[0].ReceiptHandle != "rh-d1" || v.changes[0].Timeout != time.Minute {
		t.Errorf("visibility changes %+v, want rh-d1 after 1m0s", v.changes)
	}
}

func TestHandleLogsCarryTheRequestID(t *testing.T) {
	m, s := mixed()
	p, logs, _ := newProcessor(m, s, fakeclock.New(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)))
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-123"})
	if _, err := p.Handle(ctx, event(standardARN, mixedRecords...)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < len(mixedRecords) {
		t.Fatalf("%d log lines for %d records", len(lines), len(mixedRecords))
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", l)
		}
		if rec["requestId"] != "req-123" || rec["level"] == nil {
			t.Errorf("log line without requestId or level: %s", l)
		}
	}
}

func TestHandleEmptyBatch(t *testing.T) {
	p, _, emf := newProcessor(&fakeMarket{}, &fakeStore{}, fakeclock.New(time.Now()))
	resp, err := p.Handle(context.Background(), events.SQSEvent{})
	if err != nil || resp.BatchItemFailures == nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%+v %v", resp, err)
	}
	// The response marshals as an empty list, which Lambda reads as "all done".
	b, _ := json.Marshal(resp)
	if string(b) != `{"batchItemFailures":[]}` {
		t.Errorf("response %s", b)
	}
	if doc := emfValues(t, emf); doc["TickersProcessed"] != 0.0 {
		t.Errorf("metrics %v", doc)
	}
}

// The request ends on the last completed trading day, never on a session
// still trading (whose bar is partial) or on a holiday: the stored row is
// keyed by that day's close, which must already have happened.
func TestHandleRequestsCompletedTradingDaysOnly(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		want string // "TICKER from to", dates computed by hand
	}{
		{"Tuesday 10:00 New York, market open", time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC), "AAPL 2025-11-20 2026-11-23"},
		{"Tuesday 16:30 New York, after the close", time.Date(2026, 11, 24, 21, 30, 0, 0, time.UTC), "AAPL 2025-11-21 2026-11-24"},
		{"Thanksgiving 21:00 New York, a holiday", time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC), "AAPL 2025-11-24 2026-11-25"},
		{"Saturday", time.Date(2026, 11, 21, 17, 0, 0, 0, time.UTC), "AAPL 2025-11-19 2026-11-20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeMarket{}
			p, _, _ := newProcessor(m, &fakeStore{}, fakeclock.New(tt.now))
			if _, err := p.Handle(context.Background(), event(standardARN, [2]string{"m", body("AAPL")})); err != nil {
				t.Fatal(err)
			}
			if len(m.calls) != 1 || m.calls[0] != tt.want {
				t.Errorf("requests %q, want %q", m.calls, tt.want)
			}
		})
	}
}

func TestHandleRequeuesTransientFailuresOfAFIFOBatch(t *testing.T) {
	tests := []struct {
		name        string
		arn         string
		requeuer    *fakeRequeuer
		records     [][2]string
		handedBack  []string
		fetched     []string
		requeued    []string // "TICKER attempt group"
		deadLetters []string
		metrics     map[string]float64
		log         string
	}{
		{
			name: "FIFO: the failure is re-queued with attempt+1 and the records behind it are processed",
			arn:  fifoARN, requeuer: &fakeRequeuer{}, records: mixedRecords,
			handedBack: []string{},
			fetched:    []string{"AAPL", "MSFT", "XYZ", "NVDA", "TSLA", "EMPTY", "BAD", "BRK.B"},
			requeued:   []string{"MSFT 1 tickers-3", "TSLA 1 tickers-3"},
			metrics: map[string]float64{"TickersProcessed": 3, "PermanentFailures": 4, "TickersStale": 1, "TransientFailures": 2,
				"TickersRequeued": 2, "TickersDeadLettered": 0},
			log: "message re-queued at the tail of the queue",
		},
		{
			name: "FIFO: a later attempt goes back with its count raised",
			arn:  fifoARN, requeuer: &fakeRequeuer{},
			records:    [][2]string{{"m1", bodyAttempt("MSFT", 3)}, {"m2", body("AAPL")}},
			handedBack: []string{}, fetched: []string{"MSFT", "AAPL"},
			requeued: []string{"MSFT 4 tickers-3"},
			metrics:  map[string]float64{"TickersProcessed": 1, "TransientFailures": 1, "TickersRequeued": 1},
			log:      `"ticker":"MSFT","runId":"run-1","queueAttempt":3,"error"`,
		},
		{
			name: "FIFO: at the last attempt the message is dead-lettered and acknowledged",
			arn:  fifoARN, requeuer: &fakeRequeuer{},
			records:    [][2]string{{"m1", bodyAttempt("MSFT", 4)}, {"m2", body("AAPL")}},
			handedBack: []string{}, fetched: []string{"MSFT", "AAPL"},
			deadLetters: []string{"MSFT 4 tickers-3"},
			metrics:     map[string]float64{"TickersProcessed": 1, "TransientFailures": 1, "TickersRequeued": 0, "TickersDeadLettered": 1},
			log:         `"msg":"ticker dead-lettered: transient errors on every attempt","messageId":"m1","ticker":"MSFT","runId":"run-1","attempts":5,"lastError":"own call (no day message asked for 2026-11-25): daily bars MSFT`,
		},
		{
			name: "FIFO: a failing send falls back to handing back the record and everything after it",
			arn:  fifoARN, requeuer: &fakeRequeuer{err: errors.New("AccessDenied")}, records: mixedRecords,
			handedBack: []string{"m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10"},
			fetched:    []string{"AAPL", "MSFT"},
			metrics:    map[string]float64{"TickersProcessed": 1, "PermanentFailures": 1, "TransientFailures": 8, "TickersRequeued": 0},
			log:        "re-queue failed: message handed back",
		},
		{
			name: "FIFO: a failing dead-letter send hands back too",
			arn:  fifoARN, requeuer: &fakeRequeuer{err: errors.New("AccessDenied")},
			records:    [][2]string{{"m1", bodyAttempt("MSFT", 4)}, {"m2", body("AAPL")}},
			handedBack: []string{"m1", "m2"}, fetched: []string{"MSFT"},
			metrics: map[string]float64{"TransientFailures": 2, "TickersDeadLettered": 0},
			log:     "dead-lettering failed: message handed back",
		},
		{
			name: "standard queue: handed back as without a requeuer",
			arn:  standardARN, requeuer: &fakeRequeuer{}, records: mixedRecords,
			handedBack: []string{"m3", "m7"},
			fetched:    []string{"AAPL", "MSFT", "XYZ", "NVDA", "TSLA", "EMPTY", "BAD", "BRK.B"},
			metrics:    map[string]float64{"TickersProcessed": 3, "PermanentFailures": 4, "TickersStale": 1, "TransientFailures": 2, "TickersRequeued": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, s := mixed()
			clock := fakeclock.New(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC))
			p, logs, emf := newProcessor(m, s, clock)
			p.Requeuer = tt.requeuer
			resp, err := p.Handle(context.Background(), withGroup(event(tt.arn, tt.records...), "tickers-3"))
			if err != nil {
				t.Fatalf("Handle returned a function error: %v", err)
			}
			if got := failedIDs(resp); !slices.Equal(got, tt.handedBack) {
				t.Errorf("batchItemFailures %v, want %v", got, tt.handedBack)
			}
			if got := m.tickers(); !slices.Equal(got, tt.fetched) {
				t.Errorf("fetched %v, want %v", got, tt.fetched)
			}
			show := func(ss []sent) []string {
				var out []string
				for _, x := range ss {
					if x.msg.RunID != "run-1" || !x.msg.EnqueuedAt.Equal(time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC)) {
						t.Errorf("sent %+v: run id or enqueue time changed", x.msg)
					}
					out = append(out, fmt.Sprint(x.msg.Ticker, " ", x.msg.Attempt, " ", x.group))
				}
				return out
			}
			if got := show(tt.requeuer.requeued); !slices.Equal(got, tt.requeued) {
				t.Errorf("re-queued %v, want %v", got, tt.requeued)
			}
			if got := show(tt.requeuer.deadLettered); !slices.Equal(got, tt.deadLetters) {
				t.Errorf("dead-lettered %v, want %v", got, tt.deadLetters)
			}
			doc := emfValues(t, emf)
			for name, want := range tt.metrics {
				if doc[name] != want {
					t.Errorf("metric %s = %v, want %v", name, doc[name], want)
				}
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log does not contain %q:\n%s", tt.log, logs)
			}
		})
	}
}

func TestHandleMaxAttempts(t *testing.T) {
	// With MaxAttempts 2 the second failure is the last.
	for attempt, wantDead := range map[int]bool{0: false, 1: true} {
		m, s := mixed()
		p, _, _ := newProcessor(m, s, fakeclock.New(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)))
		r := &fakeRequeuer{}
		p.Requeuer, p.MaxAttempts = r, 2
		if _, err := p.Handle(context.Background(), withGroup(event(fifoARN, [2]string{"m1", bodyAttempt("MSFT", attempt)}), "tickers")); err != nil {
			t.Fatal(err)
		}
		if got := len(r.deadLettered) == 1; got != wantDead || len(r.requeued)+len(r.deadLettered) != 1 {
			t.Errorf("attempt %d: re-queued %v, dead-lettered %v", attempt, r.requeued, r.deadLettered)
		}
	}
}

func TestHandleWithRequeuerStillHandsBackWhatTheDeadlineLeavesNoTimeFor(t *testing.T) {
	clock := fakeclock.New(time.Now())
	m := &fakeMarket{clock: clock, step: 30 * time.Second, today: true}
	s := &fakeStore{}
	p, _, emf := newProcessor(m, s, clock)
	r := &fakeRequeuer{}
	p.Requeuer, p.RecordBudget, p.Reserve = r, 27*time.Second, 2*time.Second
	ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(100*time.Second))
	defer cancel()
	var recs [][2]string
	for i, tk := range []string{"A", "B", "C", "D", "E"} {
		recs = append(recs, [2]string{fmt.Sprint("m", i+1), body(tk)})
	}
	resp, err := p.Handle(ctx, withGroup(event(fifoARN, recs...), "tickers"))
	if err != nil {
		t.Fatal(err)
	}
	if got := failedIDs(resp); !slices.Equal(got, []string{"m4", "m5"}) {
		t.Errorf("handed back %v, want [m4 m5]", got)
	}
	if len(r.requeued) != 0 || len(r.deadLettered) != 0 {
		t.Errorf("records deferred for time were re-sent: %v %v", r.requeued, r.deadLettered)
	}
	if doc := emfValues(t, emf); doc["TransientFailures"] != 2.0 || doc["TickersRequeued"] != 0.0 {
		t.Errorf("metrics %v", doc)
	}
}

// groupedMarket answers every grouped call with one published bar, the
// clock moving on by step a call (a paced call).
type groupedMarket struct {
	fakeMarket
	dates []string
}

func (m *groupedMarket) GroupedDaily(_ context.Context, date string) (marketdata.Day, error) {
	m.mu.Lock()
	m.dates = append(m.dates, date)
	m.mu.Unlock()
	m.clock.Advance(m.step)
	start, _ := marketdata.SessionStart(date)
	return marketdata.Day{Date: date, Rows: 1, Bars: map[string]marketdata.Bar{"AAPL": {Date: date, Start: start, Open: 10, High: 11, Low: 9, Close: 10, Volume: 5}}}, nil
}

// A fill is queue work paced across invocations: an invocation starts a
// fill message only with FillBudget left (the call and the session's
// writes); those it cannot start are handed back and visible again at once
// — never re-queued behind the tickers that need them — and a session
// already stored costs no call.
func TestFillMessagesArePacedAcrossInvocations(t *testing.T) {
	clock := fakeclock.New(time.Now())
	m := &groupedMarket{fakeMarket: fakeMarket{clock: clock, step: 12240 * time.Millisecond}}
	h := newMemHistory()
	v := &fakeVisibility{}
	r := &fakeRequeuer{}
	p := &pipeline.ProcessTicker{Market: m, Rows: &fakeStore{}, History: h, Requeuer: r, Visibility: v,
		FillBudget: 42 * time.Second, Reserve: 2 * time.Second, Now: clock.Now}
	sessions := marketdata.TradingDays("2026-11-09", "2026-11-20")
	var recs [][2]string
	for i, d := range slices.Backward(sessions) {
		b, err := queue.NewFill(d, "2026-11-23", "tickers", len(sessions)-i, len(sessions), "run-1/fill", clock.Now()).Encode()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, [2]string{fmt.Sprint("f", len(sessions)-i), b})
	}
	ev := withGroup(event(fifoARN, recs...), "tickers")
	for i := range ev.Records {
		ev.Records[i].ReceiptHandle = "rh-" + ev.Records[i].MessageId
	}
	ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(150*time.Second))
	defer cancel()
	resp, err := p.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	// 148 s of work: a fill starts at 12.24 s × i and needs 42 s, so nine
	// start (the ninth at 97.9 s) and the tenth does not (110.2 s).
	if got := failedIDs(resp); !slices.Equal(got, []string{"f10"}) || len(m.dates) != 9 || m.dates[0] != "2026-11-20" || len(r.requeued) != 0 {
		t.Fatalf("handed back %v after calls for %v, re-queued %d", got, m.dates, len(r.requeued))
	}
	if len(v.changes) != 1 || v.changes[0] != (queue.VisibilityChange{ReceiptHandle: "rh-f10"}) {
		t.Errorf("visibility %+v", v.changes)
	}
	// The next invocation: the nine are stored (no call), the tenth is filled.
	m.dates = nil
	if resp, err := p.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) != 0 || !slices.Equal(m.dates, []string{"2026-11-09"}) {
		t.Fatalf("second invocation: %+v %v, calls for %v", resp, err, m.dates)
	}
	if st, ok, _ := h.Session(context.Background(), "2026-11-09"); !ok || st.Status != coverage.Stored || st.Bars != 1 {
		t.Errorf("session %+v", st)
	}
}
