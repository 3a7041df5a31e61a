package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/internal/devstack/memstore"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/queue"
)

// fakeMarket answers DailyBars from a script per ticker; unknown tickers get
// bars. Each call advances clock (when set) by step, to simulate the time a
// paced fetch takes. Its grouped answers have no rows and it lists no
// splits: the tests of the batch's mechanics play v1 messages (no day
// message), whose tickers fetch their own bars.
type fakeMarket struct {
	mu     sync.Mutex
	script map[string]func(ctx context.Context) ([]marketdata.Bar, error)
	calls  []string // "TICKER from to"
	clock  *fakeclock.Clock
	step   time.Duration
	// today, when set, ends the default bars on the last trading day at the
	// clock (tests whose clock is the real time, for deadlines).
	today bool
}

func (m *fakeMarket) DailyBars(ctx context.Context, ticker, from, to string) ([]marketdata.Bar, error) {
	m.mu.Lock()
	m.calls = append(m.calls, ticker+" "+from+" "+to)
	f := m.script[ticker]
	m.mu.Unlock()
	if m.clock != nil {
		m.clock.Advance(m.step)
	}
	if f != nil {
		return f(ctx)
	}
	if m.today {
		return barsUntil(300, marketdata.LastTradingDay(m.clock.Now())), nil
	}
	return testBars(300), nil
}

func (m *fakeMarket) GroupedDaily(_ context.Context, date string) (marketdata.Day, error) {
	return marketdata.Day{Date: date}, nil
}

func (m *fakeMarket) Splits(context.Context, string, string) ([]marketdata.Split, error) {
	return nil, nil
}

func (m *fakeMarket) tickers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, c := range m.calls {
		var t string
		fmt.Sscan(c, &t)
		out = append(out, t)
	}
	return out
}

// fakeStore keeps rows by ticker and timestamp, like the table's key.
type fakeStore struct {
	mu   sync.Mutex
	rows map[string]pipeline.Row
	fail map[string]error
	puts int
}

func (s *fakeStore) HasRow(_ context.Context, ticker, date string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, err := marketdata.CloseInstant(date)
	if err != nil {
		return false, err
	}
	r, ok := s.rows[ticker+"|"+ts.Format(time.RFC3339)]
	return ok && !r.Partial, nil
}

func (s *fakeStore) PutRow(_ context.Context, r pipeline.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if err := s.fail[r.Ticker]; err != nil {
		return err
	}
	if s.rows == nil {
		s.rows = map[string]pipeline.Row{}
	}
	s.rows[r.Ticker+"|"+r.Timestamp.Format(time.RFC3339)] = r
	return nil
}

// testBars returns n weekday bars ending on Wednesday 2026-11-25, closes
// 100, 101, ..., 106, 100, ... (a saw-tooth).
func testBars(n int) []marketdata.Bar { return barsUntil(n, "2026-11-25") }

// barsUntil is testBars ending on the weekday last (YYYY-MM-DD).
func barsUntil(n int, last string) []marketdata.Bar {
	bars := make([]marketdata.Bar, 0, n)
	end, _ := time.Parse(time.DateOnly, last)
	d := time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, marketdata.NewYork())
	for len(bars) < n {
		if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday {
			bars = append(bars, marketdata.Bar{Date: d.Format(time.DateOnly), Start: d})
		}
		d = d.AddDate(0, 0, -1)
	}
	for i, j := 0, len(bars)-1; i < j; i, j = i+1, j-1 {
		bars[i], bars[j] = bars[j], bars[i]
	}
	for i := range bars {
		c := float64(100 + i%7)
		bars[i].Open, bars[i].High, bars[i].Low, bars[i].Close, bars[i].Volume = c, c+1, c-1, c, 1000
	}
	return bars
}

// body is a valid v1 message for ticker.
func body(ticker string) string {
	b, err := queue.New(ticker, "run-1", time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC)).Encode()
	if err != nil {
		panic(err)
	}
	return b
}

const (
	standardARN = "arn:aws:sqs:us-east-1:123456789012:ticker-processing-queue-dev"
	fifoARN     = "arn:aws:sqs:us-east-1:123456789012:ticker-processing-queue-dev.fifo"
)

// event builds an SQS event of records (messageId, body) from arn.
func event(arn string, recs ...[2]string) events.SQSEvent {
	var ev events.SQSEvent
	for _, r := range recs {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: r[0], Body: r[1], EventSourceARN: arn, EventSource: "aws:sqs"})
	}
	return ev
}

func failedIDs(r events.SQSEventResponse) []string {
	ids := []string{}
	for _, f := range r.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

// fakeRequeuer records re-queued and dead-lettered messages; err, when set,
// fails every send.
type fakeRequeuer struct {
	mu           sync.Mutex
	requeued     []sent
	deadLettered []sent
	err          error
}

type sent struct {
	msg   queue.Message
	group string
}

func (r *fakeRequeuer) Requeue(_ context.Context, m queue.Message, group string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.requeued = append(r.requeued, sent{m, group})
	return nil
}

func (r *fakeRequeuer) DeadLetter(_ context.Context, m queue.Message, group string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.deadLettered = append(r.deadLettered, sent{m, group})
	return nil
}

// bodyAttempt is body(ticker) with an attempt counter.
func bodyAttempt(ticker string, attempt int) string {
	m := queue.New(ticker, "run-1", time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC))
	m.Attempt = attempt
	b, err := m.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// withGroup sets the MessageGroupId attribute on every record, as Lambda
// does for a FIFO source.
func withGroup(ev events.SQSEvent, group string) events.SQSEvent {
	for i := range ev.Records {
		ev.Records[i].Attributes = map[string]string{"MessageGroupId": group, "ApproximateReceiveCount": "1"}
	}
	return ev
}

// newMemHistory is an empty stored history in memory.
func newMemHistory() *memstore.History { return memstore.NewHistory() }
