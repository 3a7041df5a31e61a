package reliability

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/dynamoitem"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// seedPortfolio writes a portfolio of the given symbols (quantity 1 each)
// in the shared tables' documented shape.
func seedPortfolio(t *testing.T, db *dynamodb.Client, stage, name string, symbols []string) {
	t.Helper()
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	put := func(table string, item map[string]types.AttributeValue) {
		if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	id := "id-" + name
	for _, sym := range symbols {
		put(deploy.PortfolioPositions.Name(stage), map[string]types.AttributeValue{"portfolioId": s(id), "positionId": s(sym), "ticker": s(sym),
			"quantity": &types.AttributeValueMemberN{Value: "1"}})
	}
	put(deploy.UserPortfolios.Name(stage), map[string]types.AttributeValue{"userId": s("u-" + name), "portfolioId": s(id), "name": s(name)})
}

// seedRows writes a fresh ticker-data row of the last trading day for each
// symbol.
func seedRows(t *testing.T, db *dynamodb.Client, stage string, symbols []string) {
	t.Helper()
	store := tickerdb.NewStore(db, deploy.TickerData.Name(stage))
	last := marketdata.LastTradingDay(time.Now())
	ts, err := marketdata.CloseInstant(last)
	if err != nil {
		t.Fatal(err)
	}
	rsi, ma := 48.0, 100.0
	for i, sym := range symbols {
		r := tickerdb.Row{Ticker: sym, Timestamp: ts, Source: "polygon",
			Snapshot: indicators.Snapshot{AsOf: last, Price: 95 + float64(i%10), RSI: &rsi, MA50: &ma, Bars: 250}}
		if err := store.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

// synthSymbols are n valid symbols starting with prefix (at most three
// letters), in sorted order.
func synthSymbols(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%c%c", prefix, 'A'+i/26%26, 'A'+i%26)
		if n > 676 {
			out[i] = fmt.Sprintf("%s%c%c%c", prefix[:min(len(prefix), 2)], 'A'+i/676%26, 'A'+i/26%26, 'A'+i%26)
		}
	}
	return out
}

// deliver hands fn one message of the analysis queue, with ctx as its
// invocation's, and reports whether it was handed back.
func deliver(t *testing.T, ctx context.Context, fn *analyzeportfolio.Function, m analysisqueue.Message, receives int) bool {
	t.Helper()
	body, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := fn.Consume(ctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-" + m.Label(), Body: body, EventSource: "aws:sqs",
		Attributes: map[string]string{"ApproximateReceiveCount": strconv.Itoa(receives)}}}})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.BatchItemFailures) > 0
}

// killable is a ledger and an analyses store that "kill" the invocation at
// a chosen point: from then on every write of the run fails, as a process
// that died would write nothing more.
type killable struct {
	analyzer.Ledger
	analyses analyzer.Analyses
	mu       sync.Mutex
	// killAt decides, on each Save of a claim (its answers just kept),
	// whether the invocation dies right after it.
	killAt func(c analysis.Claim) bool
	// failPut fails the analyses store's Put (a failed save).
	failPut bool
	// failSettle fails the first Settle of this ticker's score.
	failSettle string
	dead       bool
}

var errKilled = fmt.Errorf("the invocation was killed")

func (k *killable) isDead() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dead
}

func (k *killable) Save(ctx context.Context, c analysis.Claim) error {
	if k.isDead() {
		return errKilled
	}
	err := k.Ledger.Save(ctx, c)
	if err == nil && k.killAt != nil && k.killAt(c) {
		k.mu.Lock()
		k.dead = true
		k.mu.Unlock()
	}
	return err
}

func (k *killable) Settle(ctx context.Context, e analysis.ScoreEntry) error {
	k.mu.Lock()
	fail := k.dead || e.Ticker == k.failSettle
	if e.Ticker == k.failSettle {
		k.failSettle = ""
	}
	k.mu.Unlock()
	if fail {
		return errKilled
	}
	return k.Ledger.Settle(ctx, e)
}

func (k *killable) Complete(ctx context.Context, c analysis.Claim) error {
	if k.isDead() {
		return errKilled
	}
	return k.Ledger.Complete(ctx, c)
}

func (k *killable) Release(ctx context.Context, c analysis.Claim) error {
	if k.isDead() {
		return errKilled
	}
	return k.Ledger.Release(ctx, c)
}

func (k *killable) Put(ctx context.Context, r analysis.Record) error {
	k.mu.Lock()
	fail := k.dead || k.failPut
	k.failPut = false
	k.mu.Unlock()
	if fail {
		return fmt.Errorf("store the analysis: %w", errKilled)
	}
	return k.analyses.Put(ctx, r)
}

func (k *killable) Recent(ctx context.Context, portfolio string, limit int) ([]analysis.Record, error) {
	return k.analyses.Recent(ctx, portfolio, limit)
}

// install puts k between the function and the real ledger and store.
func (k *killable) install(d *analyzeportfolio.Deps) {
	k.Ledger, k.analyses = d.Ledger, d.Analyses
	d.Ledger, d.Analyses = k, k
}

// seedSharedNight seeds n portfolios (namePrefix NN) of 10 positions over
// 60 tickers (symPrefix…) with fresh rows: 3 held by every portfolio, 7 from
// a tail, so that they overlap as real holdings do. It returns the names.
func seedSharedNight(t *testing.T, w *world, symPrefix, namePrefix string, n int) []string {
	t.Helper()
	syms := synthSymbols(symPrefix, 60)
	seedRows(t, w.db, w.stage, syms)
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s %02d", namePrefix, i)
		names = append(names, name)
		held := []string{syms[0], syms[1], syms[2]}
		for j := range 7 {
			held = append(held, syms[3+(i*7+j*5)%57])
		}
		seedPortfolio(t, w.db, w.stage, name, held)
	}
	return names
}

// queueSender is the real SQS client on the world's local SQS endpoint,
// for the fan-out's sends.
func (w *world) queueSender() *sqs.Client {
	return sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(w.sqs.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
}

// paidRow is the report row of a pay-once scenario.
func paidRow(t *testing.T, w *world, srv *fakexai.Server, scenario, faults string, in int, names []string, handedBack int, outcome string) {
	t.Helper()
	written := 0
	for _, n := range names {
		written += countAnalyses(t, w.db, w.stage, n)
	}
	addRow(row{Analysis: true, Scenario: scenario, Faults: faults, In: in, Written: written, HandedBack: 0, Duplicated: max(written-in, 0),
		Red: handedBack, Paid: srv.Paid(), PaidAgain: srv.RepeatedPaid(), Outcome: outcome})
}

// TestFaultsAnalysisRuns covers what happens around the model calls: runs
// that overlap, a message delivered twice, a failed save, a run killed
// after paying, a deadline in the middle, answers that fix one part and
// break another, the largest portfolios, and a night's fan-out over
// shared tickers — each asserting, at the local xAI server, that no answer
// was paid for twice.
func TestFaultsAnalysisRuns(t *testing.T) {
	t.Run("overlapping_runs", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("OV", 5)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Overlap", syms)
		srv := fakexai.New(t, fakexai.Slow(fakexai.Generate(&fakexai.Generator{}), 400*time.Millisecond))
		srv.RequireKey = xaiKey
		const runs = 3
		var wg sync.WaitGroup
		statuses := make([]string, runs)
		for i := range runs {
			// Separate functions: separate execution environments.
			fn := w.analyzer(srv, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				res, err := fn.Run(ctx, analyzer.Event{PortfolioName: "Overlap"})
				if err != nil {
					t.Errorf("run %d: %v", i, err)
					return
				}
				statuses[i] = res.Portfolios[0].Status
			}()
		}
		wg.Wait()
		stored := countAnalyses(t, w.db, w.stage, "Overlap")
		reused := 0
		for _, s := range statuses {
			if s == analyzer.OutcomeReused {
				reused++
			}
		}
		if srv.RepeatedPaid() != 0 || stored != 1 || reused != runs-1 || srv.Paid() < 2 {
			t.Fatalf("%d paid (%d again), %d stored, statuses %v: want each ticker and the overview paid once, 1 analysis, the others reused",
				srv.Paid(), srv.RepeatedPaid(), stored, statuses)
		}
		addRow(row{Analysis: true, Scenario: "overlapping runs", Faults: "3 runs of the same portfolio and data at once (a retried schedule, a manual run)",
			In: runs, Written: stored, Duplicated: max(stored-1, 0), Red: srv.Calls() - 1, Paid: srv.Paid(), PaidAgain: srv.RepeatedPaid(),
			Outcome: outcome(t, "the ticker batch and the overview each claimed by one run (a conditional put); the others wait and reuse: nothing paid twice")})
	})

	t.Run("redelivered_message", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("RD", 4)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Redelivered", syms)
		srv := fakexai.New(t, fakexai.Slow(fakexai.Generate(&fakexai.Generator{}), 300*time.Millisecond))
		srv.RequireKey = xaiKey
		m := analysisqueue.New("Redelivered", "run-r", true, time.Now())
		// The same forced message twice at once (at-least-once delivery),
		// then once more after both finished.
		var wg sync.WaitGroup
		handedBack := 0
		var mu sync.Mutex
		for i := range 2 {
			fn := w.analyzer(srv, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				back := deliver(t, ctx, fn, m, i+1)
				mu.Lock()
				if back {
					handedBack++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if deliver(t, context.Background(), w.analyzer(srv, nil), m, 3) {
			handedBack++
		}
		stored := countAnalyses(t, w.db, w.stage, "Redelivered")
		if srv.Paid() != 2 || srv.RepeatedPaid() != 0 || stored != 1 || handedBack != 0 {
			t.Fatalf("%d paid (%d again), %d stored, %d handed back: want the batch and the overview once, 1 analysis, every delivery acknowledged",
				srv.Paid(), srv.RepeatedPaid(), stored, handedBack)
		}
		addRow(row{Analysis: true, Scenario: "redelivered message", Faults: "one forced queue message delivered twice at once, then a third time",
			In: 1, Written: stored, Duplicated: max(stored-1, 0), Red: 2, Paid: srv.Paid(), PaidAgain: srv.RepeatedPaid(),
			Outcome: outcome(t, "a forced run's claims are keyed by the message's run id: the batch and the overview paid once, the redeliveries reuse them and are acknowledged")})
	})

	t.Run("failed_save", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("FS", 6)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Saved", syms)
		srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
		srv.RequireKey = xaiKey
		k := &killable{failPut: true}
		fn := w.analyzer(srv, k.install)
		m := analysisqueue.New("Saved", "run-s", false, time.Now())
		first := deliver(t, context.Background(), fn, m, 1)
		paid := srv.Paid()
		second := deliver(t, context.Background(), fn, m, 2)
		stored := countAnalyses(t, w.db, w.stage, "Saved")
		if !first || second || stored != 1 || paid != 2 || srv.Paid() != 2 || srv.RepeatedPaid() != 0 {
			t.Fatalf("handed back %v then %v, %d stored, paid %d then %d (%d again): want handed back, then stored with nothing paid again",
				first, second, stored, paid, srv.Paid(), srv.RepeatedPaid())
		}
		paidRow(t, w, srv, "failed save", "the analysis's PutItem fails after the ticker batch and the overview were paid", 1, []string{"Saved"}, 1,
			outcome(t, "handed back; the redelivery finds the scores stored and the overview's answer kept in its claim: stored with 0 calls"))
	})

	t.Run("scores_stored_in_part", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("SP", 6)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Partial", syms)
		srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
		srv.RequireKey = xaiKey
		// The batch's answer scores all 6 validly; the write of the 4th
		// score fails (throttled, the SDK's retries spent).
		k := &killable{failSettle: syms[3]}
		fn := w.analyzer(srv, k.install)
		m := analysisqueue.New("Partial", "run-p", false, time.Now())
		first := deliver(t, context.Background(), fn, m, 1)
		second := deliver(t, context.Background(), fn, m, 2)
		stored := countAnalyses(t, w.db, w.stage, "Partial")
		if !first || second || stored != 1 || srv.Paid() != 2 || srv.RepeatedPaid() != 0 || srv.TickersPaidAgain() != 0 {
			t.Fatalf("handed back %v then %v, %d stored, paid %d (%d again, %d tickers): want handed back, then stored; the batch and the overview paid once",
				first, second, stored, srv.Paid(), srv.RepeatedPaid(), srv.TickersPaidAgain())
		}
		paidRow(t, w, srv, "scores stored in part", fmt.Sprintf("the batch's answer scores 6 tickers validly; the write of %s's score fails", syms[3]), 1, []string{"Partial"}, 1,
			outcome(t, "handed back, the batch released with its answer; the redelivery takes the missing score from the kept answer by ticker (the request for it alone would differ): 0 tickers paid again"))
	})

	t.Run("killed_after_paying", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("KP", 6)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Killed", syms)
		srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
		srv.RequireKey = xaiKey
		m := analysisqueue.New("Killed", "run-k", false, time.Now())
		// First killed right after the batch's answer was kept, then right
		// after the overview's. A dead invocation's claims stay pending
		// until its deadline, their lease: the redelivery (after the
		// visibility timeout, deployed) comes after it.
		backs := 0
		for i, kind := range []string{analysis.ClaimBatch, analysis.ClaimOverview} {
			k := &killable{killAt: func(c analysis.Claim) bool { return c.Kind == kind && len(c.Answers) > 0 }}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if deliver(t, ctx, w.analyzer(srv, k.install), m, i+1) {
				backs++
			}
			<-ctx.Done()
			cancel()
		}
		done := deliver(t, context.Background(), w.analyzer(srv, nil), m, 3)
		stored := countAnalyses(t, w.db, w.stage, "Killed")
		if backs != 2 || done || stored != 1 || srv.Paid() != 2 || srv.RepeatedPaid() != 0 {
			t.Fatalf("%d handed back, last handed back %v, %d stored, %d paid (%d again): want 2, false, 1, 2, 0", backs, done, stored, srv.Paid(), srv.RepeatedPaid())
		}
		if emfTotals(w.logs.String())[deploy.LLMAnswersReused.Name] < 2 {
			t.Error("LLMAnswersReused does not count the answers resumed")
		}
		paidRow(t, w, srv, "invocation killed after paying", "the invocation dies the moment the batch's paid answer is kept; its redelivery dies the moment the overview's is", 1,
			[]string{"Killed"}, 2, outcome(t, "each redelivery takes the expired claim over with its kept answer and pays nothing again; stored on the third delivery, 2 answers paid in all (LLMAnswersReused)"))
	})

	t.Run("deadline_midway", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("DL", 3*analysis.TickerBatchSize)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Late", syms)
		gen := &fakexai.Generator{}
		srv := fakexai.New(t, fakexai.Generate(gen), fakexai.Slow(fakexai.Generate(gen), 30*time.Second))
		srv.RequireKey = xaiKey
		m := analysisqueue.New("Late", "run-l", false, time.Now())
		fn := w.analyzer(srv, func(d *analyzeportfolio.Deps) { d.MinWork, d.Config.Reserve = 100*time.Millisecond, time.Second })
		ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
		first := deliver(t, ctx, fn, m, 1)
		cancel()
		paid := srv.Paid()
		srv.Script(fakexai.Generate(gen))
		second := deliver(t, context.Background(), fn, m, 2)
		items, err := analysisdb.New(w.db, deploy.PortfolioAnalyses.Name(w.stage)).Recent(context.Background(), "Late", 1)
		if err != nil || len(items) != 1 {
			t.Fatalf("read back: %v, %d items", err, len(items))
		}
		if first || second || paid != 1 || items[0].Status != analysis.StatusOK || srv.Paid() != 4 || srv.RepeatedPaid() != 0 {
			t.Fatalf("handed back %v, %v; paid %d then %d (%d again); latest %s (%s): want a fallback stored after 1 batch, then ok with 3 batches and 1 overview paid in all",
				first, second, paid, srv.Paid(), srv.RepeatedPaid(), items[0].Status, items[0].Reason)
		}
		addRow(row{Analysis: true, Scenario: "deadline in the middle", Faults: "120 tickers (3 batches): one answered, the others (and the overview) past a 3.5 s deadline (1 s kept in reserve)",
			In: 2, Written: countAnalyses(t, w.db, w.stage, "Late"), Red: 1, Paid: srv.Paid(), PaidAgain: srv.RepeatedPaid(),
			Outcome: outcome(t, "the answered batch's scores kept, the rest released: a fallback stored in time; the next run pays the 2 batches left and the overview, nothing twice")})
	})

	t.Run("fix_one_break_another", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("FB", 5)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Mended", syms)
		gen := &fakexai.Generator{Edit: func(n int, schema string, ans map[string]any) {
			switch n {
			case 1: // the batch: the first ticker's score out of range
				ans["tickers"].([]any)[0].(map[string]any)["score"] = 150
			case 2: // its repair: that ticker fixed, an unknown member added
				ans["note"] = "fixed it"
			case 3: // the overview: two top actions
				ans["top_actions"] = ans["top_actions"].([]any)[:2]
			case 4: // its repair: the list fixed, a summary nobody asked for, empty
				ans["summary"] = ""
			}
		}}
		srv := fakexai.New(t, fakexai.Generate(gen))
		srv.RequireKey = xaiKey
		res, err := w.analyzer(srv, nil).Run(context.Background(), analyzer.Event{PortfolioName: "Mended"})
		if err != nil {
			t.Fatal(err)
		}
		items, err := analysisdb.New(w.db, deploy.PortfolioAnalyses.Name(w.stage)).Recent(context.Background(), "Mended", 1)
		if err != nil || len(items) != 1 {
			t.Fatalf("read back: %v", err)
		}
		it := items[0]
		fromModel := 0
		for _, ts := range it.Result.Tickers {
			if ts.Source == analysis.SourceModel {
				fromModel++
			}
		}
		if it.Status != analysis.StatusOK || fromModel != 5 || len(it.Result.TopActions) != 3 || it.Result.Summary == "" || srv.Calls() != 4 || srv.RepeatedPaid() != 0 {
			t.Fatalf("status %s (%s), %d scores from the model, %d top actions, %d calls: want ok, 5, 3, 4", it.Status, it.Reason, fromModel, len(it.Result.TopActions), srv.Calls())
		}
		addRow(row{Analysis: true, Scenario: "answers that fix one part and break another", Faults: "a batch answer with one score out of range, its repair adding a stray member; an overview with 2 top actions, its repair adding an empty summary",
			In: 1, Written: 1, Red: srv.Calls() - 1, Paid: srv.Paid(), PaidAgain: srv.RepeatedPaid(),
			Outcome: outcome(t, fmt.Sprintf("every valid part kept from whichever answer gave it: 4 scores from the first answer, 1 from the repair; the summary from the first overview, the top actions from its repair: `%s`", res.Portfolios[0].Status))})
	})

	t.Run("500_positions_at_full_length", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("BG", analysis.MaxPositions)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Large", syms)
		srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{Lengths: fakexai.MaxLengths}))
		srv.RequireKey = xaiKey
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res, err := w.analyzer(srv, nil).Run(ctx, analyzer.Event{PortfolioName: "Large"})
		if err != nil {
			t.Fatal(err)
		}
		items, err := analysisdb.New(w.db, deploy.PortfolioAnalyses.Name(w.stage)).Recent(ctx, "Large", 1)
		if err != nil || len(items) != 1 {
			t.Fatalf("read back: %v, %d items", err, len(items))
		}
		it := items[0]
		seen := map[string]int{}
		for _, ts := range it.Result.Tickers {
			seen[ts.Ticker]++
		}
		batches := (analysis.MaxPositions + analysis.TickerBatchSize - 1) / analysis.TickerBatchSize
		if it.Status != analysis.StatusOK || len(it.Result.Tickers) != analysis.MaxPositions || len(seen) != analysis.MaxPositions ||
			srv.Calls() != batches+1 || res.Portfolios[0].Calls != batches+1 {
			t.Fatalf("status %s (%s), %d entries for %d symbols, %d calls: want ok, one entry per position, %d batches + 1", it.Status, it.Reason,
				len(it.Result.Tickers), len(seen), srv.Calls(), batches)
		}
		largest := 0
		out, err := w.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(deploy.PortfolioAnalyses.Name(w.stage))})
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range out.Items {
			largest = max(largest, dynamoitem.Size(item))
		}
		if largest > analysisdb.MaxItemBytes || len(out.Items) < 2 {
			t.Fatalf("%d items, the largest %d bytes: want parts within %d", len(out.Items), largest, analysisdb.MaxItemBytes)
		}
		addRow(row{Analysis: true, Scenario: "500 positions, answers at full length", Faults: "a portfolio of 500 positions (the cap), every text of every answer at its length limit",
			In: 1, Written: 1, Red: srv.Calls() - 1, Paid: srv.Paid(), PaidAgain: srv.RepeatedPaid(),
			Outcome: outcome(t, fmt.Sprintf("%d batch calls of at most %d tickers and one overview; stored `ok` in %d items of at most %d bytes (the tickers that do not fit in parts), one entry per position",
				batches, analysis.TickerBatchSize, len(out.Items), largest))})
	})

	t.Run("over_500_positions", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("HG", analysis.MaxPositions+20)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Huge", syms)
		srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
		srv.RequireKey = xaiKey
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		back := deliver(t, ctx, w.analyzer(srv, nil), analysisqueue.New("Huge", "run-h", false, time.Now()), 1)
		items, err := analysisdb.New(w.db, deploy.PortfolioAnalyses.Name(w.stage)).Recent(ctx, "Huge", 1)
		if err != nil || len(items) != 1 || back || len(items[0].Result.Tickers) != analysis.MaxPositions || items[0].Omitted != 20 {
			t.Fatalf("handed back %v; %v; %d items", back, err, len(items))
		}
		addRow(row{Analysis: true, Scenario: "over 500 positions", Faults: "a portfolio of 520 positions", In: 1, Written: 1, Red: srv.Calls() - 1, Paid: srv.Paid(), PaidAgain: srv.RepeatedPaid(),
			Outcome: outcome(t, "its 500 largest analyzed, the 20 others counted (omittedPositions) and said in the text; acknowledged: never five retries and a dead letter")})
	})

	t.Run("answer_cut_in_transit", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		syms := synthSymbols("CT", 4)
		seedRows(t, w.db, w.stage, syms)
		seedPortfolio(t, w.db, w.stage, "Cut", syms)
		drop := fakexai.Generate(&fakexai.Generator{})
		drop.Drop = true
		srv := fakexai.New(t, drop, fakexai.Generate(&fakexai.Generator{}))
		srv.RequireKey = xaiKey
		res, err := w.analyzer(srv, nil).Run(context.Background(), analyzer.Event{PortfolioName: "Cut"})
		if err != nil || res.Portfolios[0].Status != analysis.StatusOK || srv.Lost() != 1 || srv.RepeatedPaid() != 1 {
			t.Fatalf("%v %+v; lost %d, paid again %d: want ok, one answer lost in transit and asked again", err, res.Portfolios, srv.Lost(), srv.RepeatedPaid())
		}
		addRow(row{Analysis: true, Scenario: "answer cut in transit", Faults: "the batch's answer is produced (billed) and the connection cut before any of it is sent",
			In: 1, Written: 1, Red: srv.Calls() - 1, Paid: srv.Paid(), PaidAgain: srv.RepeatedPaid(),
			Outcome: outcome(t, "the client saw a reset and retried: an answer it never received cannot be kept, so it is paid again — the one repeat in this suite, and the only way one can happen")})
	})

	t.Run("night_over_shared_tickers", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		queueName := deploy.AnalysisQueueName(w.stage)
		queueURL := w.sqs.CreateQueue(queueName)
		names := seedSharedNight(t, w, "NS", "Night", 20)
		srv := fakexai.New(t, fakexai.Slow(fakexai.Generate(&fakexai.Generator{Sample: 20, Seed: 11}), 50*time.Millisecond))
		srv.RequireKey = xaiKey
		client := w.queueSender()
		fn := w.analyzer(srv, func(d *analyzeportfolio.Deps) { d.Queue = analyzeportfolio.NewQueue(client, queueURL) })
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		fan, err := fn.Run(ctx, analyzer.Event{PortfolioName: "*"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.sqs.DrainConcurrent(ctx, queueName, 1, deploy.DefaultAnalysisConcurrency, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return fn.Consume(ictx, ev)
		}); err != nil {
			t.Fatal(err)
		}
		scores := map[string]map[int]bool{}
		repo := analysisdb.New(w.db, deploy.PortfolioAnalyses.Name(w.stage))
		for _, n := range names {
			items, err := repo.Recent(ctx, n, 1)
			if err != nil || len(items) != 1 || items[0].Status != analysis.StatusOK {
				t.Fatalf("%s: %v %+v", n, err, items)
			}
			for _, ts := range items[0].Result.Tickers {
				if scores[ts.Ticker] == nil {
					scores[ts.Ticker] = map[int]bool{}
				}
				scores[ts.Ticker][ts.Score] = true
			}
		}
		for sym, s := range scores {
			if len(s) != 1 {
				t.Errorf("%s has %d different scores in one night", sym, len(s))
			}
		}
		tickerCalls := 0
		for _, r := range srv.Requests() {
			if r.Decoded.ResponseFormat.JSONSchema.Name == analysis.SchemaTickers {
				tickerCalls++
			}
		}
		if tickerCalls != 2 || srv.RepeatedPaid() != 0 || len(fan.Queued) != 20 {
			t.Fatalf("%d ticker calls (%d paid again), %d queued: want the 60 tickers in 2 planned batches, 20 portfolios", tickerCalls, srv.RepeatedPaid(), len(fan.Queued))
		}
		paidRow(t, w, srv, "a night over shared tickers", "`*` over 20 portfolios of 10 positions sharing 60 tickers, consumed 10 at once; the model samples a different score on every answer", 20, names, 0,
			outcome(t, "the fan-out plans the 60 tickers into 2 batches queued first; each ticker scored once and the same in every portfolio; 2 batch calls and 20 overviews, nothing paid twice"))
	})

	t.Run("portfolios_before_their_batches", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		queueName := deploy.AnalysisQueueName(w.stage)
		// SQS does not promise a standard queue's order: this one hands
		// out the newest message first, so every portfolio message comes
		// before the batch messages queued ahead of it.
		queueURL := w.sqs.CreateQueueWith(queueName, localsqs.QueueOptions{Pick: localsqs.NewestFirst})
		names := seedSharedNight(t, w, "OO", "Early", 14)
		srv := fakexai.New(t, fakexai.Slow(fakexai.Generate(&fakexai.Generator{Sample: 20, Seed: 5}), 50*time.Millisecond))
		srv.RequireKey = xaiKey
		client := w.queueSender()
		const plannedLease = 400 * time.Millisecond
		fn := w.analyzer(srv, func(d *analyzeportfolio.Deps) {
			d.Queue = analyzeportfolio.NewQueue(client, queueURL)
			d.PlannedLease = plannedLease
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		fan, err := fn.Run(ctx, analyzer.Event{PortfolioName: "*"})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var order []string
		totals, err := w.sqs.DrainConcurrent(ctx, queueName, 1, deploy.DefaultAnalysisConcurrency, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			if m, err := analysisqueue.Decode([]byte(ev.Records[0].Body)); err == nil {
				mu.Lock()
				order = append(order, m.Kind)
				mu.Unlock()
			}
			ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return fn.Consume(ictx, ev)
		})
		if err != nil {
			t.Fatal(err)
		}
		if order[0] != analysisqueue.KindPortfolio || order[len(order)-1] != analysisqueue.KindTickers {
			t.Fatalf("delivered %v: want the portfolios first", order)
		}
		repo := analysisdb.New(w.db, deploy.PortfolioAnalyses.Name(w.stage))
		for _, n := range names {
			items, err := repo.Recent(ctx, n, 1)
			if err != nil || len(items) != 1 || items[0].Status != analysis.StatusOK {
				t.Fatalf("%s: %v %+v", n, err, items)
			}
		}
		tickerCalls := 0
		for _, r := range srv.Requests() {
			if r.Decoded.ResponseFormat.JSONSchema.Name == analysis.SchemaTickers {
				tickerCalls++
			}
		}
		logs := w.logs.String()
		waited := strings.Count(logs, "other runs hold the ticker batches this portfolio needs: waiting")
		late := strings.Count(logs, "ticker batch done by another run")
		if tickerCalls != 2 || srv.RepeatedPaid() != 0 || totals.Requeued != 0 || len(fan.Queued) != len(names) || waited == 0 || late != 2 {
			t.Fatalf("%d ticker calls (%d paid again), %d handed back, %d queued, %d waits, %d batch messages late: want 2, 0, 0, %d, some, 2",
				tickerCalls, srv.RepeatedPaid(), totals.Requeued, len(fan.Queued), waited, late, len(names))
		}
		paidRow(t, w, srv, "portfolios before their batches", fmt.Sprintf("`*` over %d portfolios of 10 positions sharing 60 tickers; the standard queue hands out the newest message first: every portfolio before the 2 batch messages queued ahead of them; consumed 10 at once", len(names)),
			len(names), names, 0, outcome(t, fmt.Sprintf("the first portfolios wait for the planned batches' messages (the plan's lease, %s here, 90 s deployed), then two of them run the batches; the others wait for those; the batch messages, last, find them done: 2 batch calls, nothing paid twice, nothing handed back", plannedLease)))
	})

	t.Run("fan_out_with_a_failing_portfolio", func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		queueName := deploy.AnalysisQueueName(w.stage)
		queueURL := w.sqs.CreateQueue(queueName)
		syms := synthSymbols("FO", 6)
		seedRows(t, w.db, w.stage, syms)
		names := []string{"Alpha", "Beta", "Gamma", "Delta"}
		for i, n := range names {
			seedPortfolio(t, w.db, w.stage, n, syms[i:i+2])
		}
		// Broken's only ticker row cannot be read (no price): its analysis
		// fails on every receive.
		if _, err := w.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(deploy.TickerData.Name(w.stage)),
			Item: map[string]types.AttributeValue{"ticker": &types.AttributeValueMemberS{Value: "BRKN"}, "timestamp": &types.AttributeValueMemberS{Value: "2026-11-27T21:00:00Z"}}}); err != nil {
			t.Fatal(err)
		}
		seedPortfolio(t, w.db, w.stage, "Broken", []string{"BRKN"})
		srv := fakexai.New(t, fakexai.Generate(&fakexai.Generator{}))
		srv.RequireKey = xaiKey
		client := w.queueSender()
		fn := w.analyzer(srv, func(d *analyzeportfolio.Deps) { d.Queue = analyzeportfolio.NewQueue(client, queueURL) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		fan, err := fn.Run(ctx, analyzer.Event{PortfolioName: "*"})
		if err != nil {
			t.Fatal(err)
		}
		totals, err := w.sqs.DrainConcurrent(ctx, queueName, 1, deploy.DefaultAnalysisConcurrency, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			return fn.Consume(ctx, ev)
		})
		if err != nil {
			t.Fatal(err)
		}
		written := 0
		for _, n := range names {
			written += countAnalyses(t, w.db, w.stage, n)
		}
		dead := w.sqs.DeadLetters(queueName)
		failed := emfTotals(w.logs.String())[deploy.AnalysisFailed.Name]
		var deadPortfolios []string
		for _, b := range dead {
			if m, err := analysisqueue.Decode([]byte(b)); err == nil && m.Kind == analysisqueue.KindPortfolio {
				deadPortfolios = append(deadPortfolios, b)
			}
		}
		dead = deadPortfolios
		in := len(fan.Queued)
		lost := in - written - len(dead)
		if in != 5 || written != 4 || len(dead) != 1 || lost != 0 || totals.Requeued != deploy.AnalysisMaxReceiveCount-1 ||
			failed != float64(deploy.AnalysisMaxReceiveCount) || countAnalyses(t, w.db, w.stage, "Broken") != 0 {
			t.Fatalf("queued %d, written %d, dead %v, requeued %d, AnalysisFailed %v: want 5, 4, Broken after 5 receives, 4, 5",
				in, written, dead, totals.Requeued, failed)
		}
		m, err := analysisqueue.Decode([]byte(dead[0]))
		if err != nil || m.Portfolio != "Broken" {
			t.Fatalf("dead-lettered %q (%v), want Broken's message", dead[0], err)
		}
		addRow(row{Analysis: true, Scenario: "fan-out with a failing portfolio", Faults: "`*` over 5 portfolios, one of whose ticker rows cannot be read",
			In: in, Written: written, HandedBack: len(dead), Lost: lost, Red: totals.Requeued, Paid: srv.Paid(), PaidAgain: srv.RepeatedPaid(),
			Outcome: outcome(t, "one message per portfolio; 4 analyzed; the failing one handed back on each of 5 receives (AnalysisFailed 5, alarmed) and dead-lettered, never skipped")})
	})
}
