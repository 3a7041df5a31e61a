package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
)

// Regressions of the stored history's nights found by the review of issue
// 17: faults of the provider, of the queue and of concurrent consumers that
// the nights of stored_test.go do not play. Same world: the real Polygon
// client against the local Polygon, the real stores on dynalite.

// One grouped row whose prices no market printed (finite and positive, but
// 1e200: beyond what DynamoDB stores) is skipped and counted; the session is
// stored with every other row at the first attempt, instead of failing whole
// as a transient error on every attempt.
func TestAGarbageRowIsSkippedNotTheSession(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{})
	n.p.Publisher = nil // the day message alone
	end, err := marketdata.SessionClose("2026-11-20")
	if err != nil {
		t.Fatal(err)
	}
	ms := end.UnixMilli()
	n.srv.EnqueueFor(fakepolygon.Grouped, fakepolygon.JSON(200, fmt.Sprintf(`{"queryCount":2,"resultsCount":2,"adjusted":false,"status":"OK","request_id":"x","results":[
 {"T":"AAPL","o":199.5,"h":201,"l":199,"c":200.25,"v":1000,"t":%d},
 {"T":"ZJNK","o":1e200,"h":1e200,"l":1e200,"c":1e200,"v":1,"t":%d}]}`, ms, ms)))
	n.clock.Set(nightOf(t, "2026-11-20"))
	n.deliver(n.messages("2026-11-20", "AAPL")[:1])
	if r := n.record[0]; r.Outcome != pipeline.DayDone || r.Day.Rows != 2 || r.Day.Skipped != 1 {
		t.Fatalf("day message %v (%v), %+v: want done at once, one row of two skipped", r.Outcome, r.Err, r.Day)
	}
	st, ok, err := n.bars.Session(context.Background(), "2026-11-20")
	if err != nil || !ok || st.Status != coverage.Stored || st.Rows != 2 || st.Bars != 1 {
		t.Errorf("session %+v (%v %v): want stored, 2 rows, 1 bar", st, ok, err)
	}
	h, err := n.bars.TickerHistory(context.Background(), "AAPL", "2026-11-20", "2026-11-20")
	if err != nil || len(h.Bars) != 1 || h.Bars[0].Close != 200.25 || h.Bars[0].Open != 199.5 {
		t.Errorf("AAPL's bar %+v %v, want the row as sent", h.Bars, err)
	}
	if h, _ := n.bars.TickerHistory(context.Background(), "ZJNK", "2026-11-20", "2026-11-20"); len(h.Bars) != 0 {
		t.Errorf("ZJNK stored: %+v", h.Bars)
	}
	if logs := n.logs.String(); n.metric(deploy.GroupedRowsSkipped.Name) != 1 || !strings.Contains(logs, "ZJNK") || !strings.Contains(logs, "open 1e+200 is outside the sane range") {
		t.Errorf("GroupedRowsSkipped %v; the log does not name ZJNK and why", n.metric(deploy.GroupedRowsSkipped.Name))
	}
}

// A split listed 30 days after its execution date, on a Saturday, is read
// by Monday's check: the splits are asked from 30 days before the last
// check's day (Friday 2026-11-20), not before the night's — AAPL's row of
// Monday equals the split-adjusted reference with a warm night's calls.
func TestASplitListed30DaysLateOnAWeekendIsApplied(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{
		Splits: []fakepolygon.Split{{Ticker: "AAPL", Date: "2026-10-22", From: 1, To: 4, Listed: "2026-11-21"}}})
	n.night("2026-11-20", "AAPL", "MSFT")
	n.calls()
	n.night("2026-11-23", "AAPL", "MSFT")
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-23", "grouped 2026-11-20", "splits"}) {
		t.Errorf("Monday's calls %v, want a warm night's", got)
	}
	reqs := n.srv.Requests()
	if q := reqs[len(reqs)-1].RawQuery; !strings.Contains(q, "execution_date.gte=2026-10-21&execution_date.lte=2026-11-23") {
		t.Errorf("Monday's splits asked with %s, want the execution dates 2026-10-21..2026-11-23", q)
	}
	n.checkRow("AAPL", "2026-11-23")
	n.checkRow("MSFT", "2026-11-23")
	if n.metric(deploy.SplitsFound.Name) != 1 {
		t.Errorf("SplitsFound %v", n.metric(deploy.SplitsFound.Name))
	}
}

// A split the provider lists twice under two ids (the same ticker, date
// and ratio) is one entry of the ledger, applied once: AAPL's rows after its
// 4-for-1 split equal the reference, and the check says so in the log and
// the day's record.
func TestASplitListedTwiceIsAppliedOnce(t *testing.T) {
	n := newNights(t, "2026-11-16", testSessions, fakepolygon.Options{
		Splits: []fakepolygon.Split{{Ticker: "AAPL", Date: "2026-11-18", From: 1, To: 4, ID: "E1", AlsoID: "E7"}}})
	for _, d := range []string{"2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"} {
		n.record = nil
		n.night(d, "AAPL", "MSFT")
		n.checkRow("AAPL", d)
		n.checkRow("MSFT", d)
		// Asked for from its execution date's night on.
		if r := n.record[0]; r.Day == nil || (r.Day.SplitsListedTwice == 1) != (d >= "2026-11-18") {
			t.Errorf("%s: the day's record %+v", d, r.Day)
		}
	}
	ledger, err := n.bars.Ledger(context.Background(), "2026-11-01", "2026-11-30")
	if err != nil || len(ledger) != 1 || ledger[0].ID != "E1" || ledger[0].To != 4 {
		t.Errorf("ledger %+v %v, want the one entry E1", ledger, err)
	}
	if !strings.Contains(n.logs.String(), "splits the provider lists twice") {
		t.Error("not logged")
	}
}

// A day message that fails after its grouped call (here the splits
// endpoint answers 400: acknowledged as permanent) leaves no part in the
// night's state, but the session it stored says what the tickers need: they
// are served by the grouped answer, with no call of their own — the
// reviewer's night made one call per held ticker, unbounded.
func TestADayMessageFailedAfterItsCallCostsNoTickerCalls(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{})
	held := []string{"AAPL", "BRK.B", "MSFT", "NVDA"}
	n.night("2026-11-20", held...)
	n.calls()
	n.record = nil
	n.srv.EnqueueFor(fakepolygon.Splits, fakepolygon.JSON(http.StatusBadRequest, `{"status":"ERROR","request_id":"x","error":"bad parameter"}`))
	n.night("2026-11-23", held...)
	if r := n.record[0]; r.Day == nil || r.Outcome != pipeline.Permanent {
		t.Fatalf("day message %v (%v): want acknowledged as permanent", r.Outcome, r.Err)
	}
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-23", "grouped 2026-11-20", "splits"}) {
		t.Errorf("calls %v: want the day message's alone", got)
	}
	for _, tk := range held {
		// Computed from the stored bars; partial, the ledger not checked
		// tonight: the price is the day's close all the same.
		row, _, _ := n.rows.Latest(context.Background(), tk)
		if want := n.reference(tk, "2026-11-23", ""); row.AsOf != "2026-11-23" || !row.Partial || row.Price != want.Price {
			t.Errorf("%s: row %+v, want the partial row of 2026-11-23 at %v", tk, row, want.Price)
		}
	}
	if n.metric(deploy.TickersBackfilled.Name) != 0 {
		t.Errorf("TickersBackfilled %v", n.metric(deploy.TickersBackfilled.Name))
	}
}

// A night whose day message never ran (dead-lettered, or lost) has no
// grouped answer: its tickers make their own calls, bounded per night and
// counted in the night's state (TickerCalls 2 here: two calls, the others
// stale until the catch-up run queues the day message again, which serves
// them with one grouped call).
func TestTickerCallsAreBoundedWithoutADayMessage(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{})
	held := []string{"AAPL", "BRK.B", "MSFT", "NVDA"}
	n.night("2026-11-20", held...)
	n.calls()
	n.record = nil
	n.p.TickerCalls = 2
	n.clock.Set(nightOf(t, "2026-11-23"))
	msgs := n.messages("2026-11-23", held...)
	n.deliver(msgs[1:]) // the tickers alone
	if got := n.calls(); !slices.Equal(got, []string{"AAPL", "BRK.B"}) {
		t.Errorf("calls %v, want the first two tickers' own", got)
	}
	n.checkRow("AAPL", "2026-11-23")
	n.checkRow("BRK.B", "2026-11-23")
	for _, r := range n.record[2:] {
		if r.Outcome != pipeline.Stale || !errors.Is(r.Err, pipeline.ErrTickerCallsSpent) {
			t.Errorf("%s: %v (%v), want stale: the night's calls are spent", r.Ticker, r.Outcome, r.Err)
		}
	}
	if night, _, _ := n.bars.Night(context.Background(), "2026-11-23"); night.TickerCalls != 2 || len(night.Parts) != 0 {
		t.Errorf("night %+v: want 2 calls counted, no part", night)
	}
	// The catch-up run: the day message and the two stale tickers.
	n.clock.Set(nightOf(t, "2026-11-23").Add(2 * time.Hour))
	n.deliver(n.messages("2026-11-23", "MSFT", "NVDA"))
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-23", "grouped 2026-11-20", "splits"}) {
		t.Errorf("catch-up calls %v", got)
	}
	n.checkRow("MSFT", "2026-11-23")
	n.checkRow("NVDA", "2026-11-23")
}

// One empty answer for a past session, while a later one is published, is
// not a closure of the exchange: the session is recorded empty and asked
// again the next night, which stores it; no trading day leaves the calendar,
// and the rows equal the reference. (The reviewer's night learnt 2026-11-23
// closed for good: every later window skipped a trading day, AAPL's RSI of
// 2026-11-30 read 32.47 instead of 34.06.)
func TestOneEmptyAnswerIsNotAClosure(t *testing.T) {
	ctx := context.Background()
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{})
	n.night("2026-11-20", "AAPL")
	n.srv.ServeEmpty("2026-11-23", 1)
	n.calls()
	n.night("2026-11-24", "AAPL") // 2026-11-23 missed: its fill answers empty
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-24", "grouped 2026-11-20", "splits", "grouped 2026-11-23"}) {
		t.Errorf("calls %v", got)
	}
	if st, _, _ := n.bars.Session(ctx, "2026-11-23"); st.Status != coverage.Empty || st.Night != "2026-11-24" {
		t.Errorf("2026-11-23 after its empty answer: %+v", st)
	}
	if row, _, _ := n.rows.Latest(ctx, "AAPL"); !row.Partial || row.AsOf != "2026-11-24" {
		t.Errorf("AAPL on 2026-11-24 %+v: want partial, its window lacks 2026-11-23", row)
	}
	n.night("2026-11-25", "AAPL")
	if got := n.calls(); !slices.Equal(got, []string{"grouped 2026-11-25", "grouped 2026-11-24", "splits", "grouped 2026-11-23"}) {
		t.Errorf("next night's calls %v: want 2026-11-23 asked again", got)
	}
	m, _ := n.bars.Market(ctx)
	if len(m.Closures) != 0 || n.metric(deploy.SessionsClosed.Name) != 0 {
		t.Errorf("closures learnt %+v (SessionsClosed %v)", m.Closures, n.metric(deploy.SessionsClosed.Name))
	}
	n.checkRow("AAPL", "2026-11-25")
}

// groups is the ticker queue with two message groups: what
// processTicker queues goes to its message group, and each group is drained
// by its own consumer, at the same time as the other, one batch of 10 at a
// time (the FIFO event source hands out one batch per group).
type groups struct {
	n       *nights
	mu      sync.Mutex
	q       map[string][]queue.Message
	records []pipeline.Record
}

func (g *groups) Publish(_ context.Context, msgs []queue.Message) (queue.Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range msgs {
		grp := m.GroupOf(2)
		g.q[grp] = append(g.q[grp], m)
	}
	return queue.Result{Queued: len(msgs)}, nil
}

// night queues what processTickers queues on d with two groups (a day
// message heading each group, holding its tickers, then one message per
// ticker) and drains both groups at once.
func (g *groups) night(d string, tickers ...string) {
	t := g.n.t
	t.Helper()
	g.n.clock.Set(nightOf(t, d))
	g.n.run++
	runID := fmt.Sprint("run-", g.n.run)
	byGroup := map[string][]string{}
	g.n.mu.Lock()
	for _, tk := range slices.Sorted(slices.Values(tickers)) {
		byGroup[queue.GroupID(tk, 2)] = append(byGroup[queue.GroupID(tk, 2)], tk)
		g.n.held[tk] = true
	}
	g.n.mu.Unlock()
	if len(byGroup) != 2 {
		t.Fatalf("tickers %v fill one group only", tickers)
	}
	for grp, tks := range byGroup {
		msgs := []queue.Message{queue.NewDay(d, tks, grp, 1, 1, runID, g.n.clock.Now())}
		for _, tk := range tks {
			msgs = append(msgs, queue.NewTicker(tk, d, runID, g.n.clock.Now()))
		}
		g.q[grp] = msgs
	}
	var wg sync.WaitGroup
	for grp := range byGroup {
		wg.Go(func() {
			for i := 0; ; i++ {
				g.mu.Lock()
				batch := g.q[grp][:min(10, len(g.q[grp]))]
				g.q[grp] = g.q[grp][len(batch):]
				g.mu.Unlock()
				if len(batch) == 0 {
					return
				}
				var ev events.SQSEvent
				for j, m := range batch {
					body, err := m.Encode()
					if err != nil {
						t.Error(err)
						return
					}
					id := fmt.Sprintf("%s-%s-%d-%d", runID, grp, i, j)
					ev.Records = append(ev.Records, events.SQSMessage{MessageId: id, Body: body, ReceiptHandle: "rh-" + id,
						EventSourceARN: fifoARN, Attributes: map[string]string{"MessageGroupId": grp}})
				}
				resp, err := g.n.p.Handle(context.Background(), ev)
				if err != nil || len(resp.BatchItemFailures) > 0 {
					t.Errorf("group %s: handed back %v (%v)", grp, failedIDs(resp), err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// overlap holds the first grouped call until another consumer has found
// the claim on that work taken: the two groups' day messages then run at
// once, as two consumers' batches do.
type overlap struct {
	pipeline.MarketData
	pipeline.History
	once, held sync.Once
	refused    chan struct{}
}

func (o *overlap) GroupedDaily(ctx context.Context, date string) (marketdata.Day, error) {
	o.once.Do(func() {
		select {
		case <-o.refused:
		case <-time.After(10 * time.Second):
		}
	})
	return o.MarketData.GroupedDaily(ctx, date)
}

func (o *overlap) Claim(ctx context.Context, name, owner string, now, until time.Time) (bool, error) {
	ok, err := o.History.Claim(ctx, name, owner, now, until)
	if err == nil && !ok {
		o.held.Do(func() { close(o.refused) })
	}
	return ok, err
}

// With two message groups, the consumers of both run the night at once:
// each group's day message, each its own fill (a cold store) and its
// tickers twice. Every session is asked for once, the splits once: the
// other consumer waits for the answer its tickers need. The night's state
// keeps both groups' parts, and every row equals the reference. (The
// reviewer's two groups both asked for the day and the splits, and the
// night kept one part.) The warm night after it is a warm night's three
// calls.
func TestTwoMessageGroupsAskForEachSessionOnce(t *testing.T) {
	n := newNights(t, "2026-11-20", testSessions, fakepolygon.Options{})
	g := &groups{n: n, q: map[string][]queue.Message{}}
	o := &overlap{MarketData: n.p.Market, History: n.p.History, refused: make(chan struct{})}
	var mu sync.Mutex
	n.p.Market, n.p.History, n.p.Publisher, n.p.ClaimPoll = o, o, g, 2*time.Millisecond
	n.p.Observer = func(r pipeline.Record) {
		mu.Lock()
		defer mu.Unlock()
		g.records = append(g.records, r)
	}
	held := []string{"AAPL", "BRK.B", "MSFT", "NVDA"}
	g.night("2026-11-20", held...)
	asked := map[string]int{}
	got := n.calls()
	for _, c := range got {
		asked[c]++
	}
	w := n.window("2026-11-20")
	if len(got) != len(w)+1 || asked["splits"] != 1 {
		t.Errorf("cold night: %d calls, want %d: the %d sessions once each and the splits once", len(got), len(w)+1, len(w))
	}
	for _, d := range w {
		if asked["grouped "+d] != 1 {
			t.Errorf("session %s asked %d times", d, asked["grouped "+d])
		}
	}
	night, _, err := n.bars.Night(context.Background(), "2026-11-20")
	if err != nil || len(night.Parts) != 2 {
		t.Errorf("night %+v %v: want both groups' parts", night, err)
	}
	var days int
	for _, r := range g.records {
		if r.Day != nil && r.Outcome == pipeline.DayDone {
			days++
		}
	}
	if days != 2 {
		t.Errorf("%d day messages done, want 2", days)
	}
	for _, tk := range held {
		n.checkRow(tk, "2026-11-20")
	}
	g.night("2026-11-23", held...)
	if got := n.calls(); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"grouped 2026-11-20", "grouped 2026-11-23", "splits"}) {
		t.Errorf("warm night's calls %v", got)
	}
	for _, tk := range held {
		n.checkRow(tk, "2026-11-23")
	}
}

// groupedFaults answers the grouped call of one session with a transient
// failure at once, and of another only when its context ends: a call the
// invocation's deadline cuts.
type groupedFaults struct {
	*fakeMarket
	failing, slow string
}

func (g groupedFaults) GroupedDaily(ctx context.Context, date string) (marketdata.Day, error) {
	switch date {
	case g.failing:
		return marketdata.Day{}, retry.Transient(errors.New("polygon: 503 Service Unavailable"), 0)
	case g.slow:
		<-ctx.Done()
		return marketdata.Day{}, ctx.Err()
	}
	return g.fakeMarket.GroupedDaily(ctx, date)
}

// A fill message cut by the invocation's deadline is made visible again at
// once, as a ticker record cut by it is: its failure is the invocation's
// lack of time, not an attempt, and the tickers of its group wait behind it.
// A fill that failed is retried after the retry delay.
func TestAFillCutByTheDeadlineIsReleasedAtOnce(t *testing.T) {
	clock := fakeclock.New(time.Now())
	p, _, _ := newProcessor(&fakeMarket{}, &fakeStore{}, clock)
	p.Market = groupedFaults{fakeMarket: &fakeMarket{}, failing: "2026-11-19", slow: "2026-11-18"}
	v := &fakeVisibility{}
	p.Visibility, p.FillBudget, p.Reserve, p.Sessions = v, 50*time.Millisecond, 100*time.Millisecond, testSessions
	for _, c := range []struct {
		session string
		want    time.Duration
	}{{"2026-11-19", pipeline.DefaultDayRetryDelay}, {"2026-11-18", 0}} {
		body, err := queue.NewFill(c.session, "2026-11-20", "tickers", 1, 2, "run-1/fill", clock.Now()).Encode()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		ev := event(fifoARN, [2]string{"f-" + c.session, body})
		ev.Records[0].ReceiptHandle = "rh-" + c.session
		resp, err := p.Handle(ctx, ev)
		cancel()
		if err != nil || !slices.Equal(failedIDs(resp), []string{"f-" + c.session}) {
			t.Fatalf("fill of %s: handed back %v (%v)", c.session, failedIDs(resp), err)
		}
		if last := v.changes[len(v.changes)-1]; last != (queue.VisibilityChange{ReceiptHandle: "rh-" + c.session, Timeout: c.want}) {
			t.Errorf("fill of %s: visibility %+v, want visible again after %v", c.session, last, c.want)
		}
	}
}
