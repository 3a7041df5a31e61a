package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/queue"
)

type fakeSource struct {
	res   pipeline.Holdings
	err   error
	calls int
}

func (f *fakeSource) HeldSymbols(context.Context) (pipeline.Holdings, error) {
	f.calls++
	return f.res, f.err
}

// fakePublisher accepts everything except the tickers in reject.
type fakePublisher struct {
	got    []queue.Message
	reject map[string]bool
	err    error
}

func (f *fakePublisher) Publish(_ context.Context, msgs []queue.Message) (queue.Result, error) {
	f.got = append(f.got, msgs...)
	var r queue.Result
	for _, m := range msgs {
		if f.reject[m.Ticker] {
			r.Failed = append(r.Failed, queue.Failure{Ticker: m.Ticker, Code: "InvalidParameterValue", SenderFault: true})
			continue
		}
		r.Queued++
	}
	return r, f.err
}

// tickers are the ticker messages' tickers, in order.
func (f *fakePublisher) tickers() []string {
	var out []string
	for _, m := range f.got {
		if !m.IsDay() {
			out = append(out, m.Ticker)
		}
	}
	return out
}

// days are the day messages, in order.
func (f *fakePublisher) days() []queue.Message {
	var out []queue.Message
	for _, m := range f.got {
		if m.IsDay() {
			out = append(out, m)
		}
	}
	return out
}

var scanned = pipeline.Holdings{ItemsScanned: 2604, Pages: 4, Symbols: []string{"AAPL", "BRK.B", "NVDA"},
	Invalid: []pipeline.InvalidSymbol{
		{Table: "portfolio-positions-dev", Key: `portfolioId="p1" positionId="x"`, Value: "bad$\n1", Reason: `invalid ticker symbol "bad$\n1"`},
		{Table: "user-portfolios-dev", Key: `userId="u1" portfolioId="p1"`, Value: "", Reason: "tickers[3] is a N, not a string"},
	}}

func newCollector(src *fakeSource, pub *fakePublisher) (*pipeline.ProcessTickers, *bytes.Buffer, *bytes.Buffer) {
	var logs, emf bytes.Buffer
	return &pipeline.ProcessTickers{Source: src, Publisher: pub, Metrics: metrics.New(&emf, "test"), Logger: logging.New(&logs, slog.LevelInfo),
		Now: func() time.Time { return time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC) }}, &logs, &emf
}

func TestProcessTickersScan(t *testing.T) {
	for _, ev := range []string{``, `{}`, `null`, ` {"version":"0","detail-type":"Scheduled Event","detail":{}} `, `{"portfolio_name":"ZSM Seven"}`, `[1,2]`} {
		t.Run(ev, func(t *testing.T) {
			src, pub := &fakeSource{res: scanned}, &fakePublisher{}
			p, logs, emf := newCollector(src, pub)
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-9"})
			sum, err := p.Handle(ctx, json.RawMessage(ev))
			if err != nil {
				t.Fatal(err)
			}
			// 02:30 UTC on 2026-11-27 is 21:30 on Thanksgiving in New York:
			// the last completed trading day is Wednesday 2026-11-25.
			want := pipeline.Summary{RunID: "req-9", Mode: "scan", Date: "2026-11-25", ItemsScanned: 2604, Pages: 4, SymbolsFound: 3,
				Queued: 3, DayMessages: 1, Invalid: 2}
			if sum != want {
				t.Errorf("summary %+v\nwant    %+v", sum, want)
			}
			if src.calls != 1 || !slices.Equal(pub.tickers(), []string{"AAPL", "BRK.B", "NVDA"}) {
				t.Errorf("scans %d, queued %v", src.calls, pub.tickers())
			}
			// The day message first, at the head of the group, then the tickers.
			if len(pub.got) != 4 || !pub.got[0].IsDay() {
				t.Fatalf("messages %+v, want the day message first", pub.got)
			}
			if d := pub.got[0]; d.Date != "2026-11-25" || !slices.Equal(d.Tickers, []string{"AAPL", "BRK.B", "NVDA"}) || d.Group != "tickers" || d.Part != 1 || d.Parts != 1 {
				t.Errorf("day message %+v", d)
			}
			for _, m := range pub.got {
				if m.V != 2 || m.Date != "2026-11-25" || m.RunID != "req-9" || !m.EnqueuedAt.Equal(time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC)) {
					t.Errorf("message %+v", m)
				}
			}
			out := logs.String()
			if !strings.Contains(out, `"key":"portfolioId=\"p1\" positionId=\"x\""`) || !strings.Contains(out, `"value":"\"bad$\\n1\""`) {
				t.Errorf("invalid symbol not logged with its key and a quoted value:\n%s", out)
			}
			if !strings.Contains(out, `"msg":"processTickers finished"`) || !strings.Contains(out, `"symbolsFound":3`) {
				t.Errorf("summary not logged:\n%s", out)
			}
			var doc map[string]any
			if err := json.Unmarshal(emf.Bytes(), &doc); err != nil || doc["TickersQueued"] != 3.0 || doc["InvalidSymbols"] != 2.0 {
				t.Errorf("EMF %s (%v)", emf, err)
			}
		})
	}
}

func TestProcessTickersManual(t *testing.T) {
	src, pub := &fakeSource{res: scanned}, &fakePublisher{}
	p, logs, _ := newCollector(src, pub)
	sum, err := p.Handle(context.Background(), json.RawMessage(`{"tickers":["msft"," AAPL ","AAPL","DROP TABLE;",""]}`))
	if err != nil {
		t.Fatal(err)
	}
	if src.calls != 0 {
		t.Error("a manual run scanned the tables")
	}
	if !slices.Equal(pub.tickers(), []string{"AAPL", "MSFT"}) {
		t.Errorf("queued %v, want [AAPL MSFT]", pub.tickers())
	}
	if sum.Mode != "manual" || sum.SymbolsFound != 2 || sum.Queued != 2 || sum.Invalid != 2 || len(sum.RunID) != 32 {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(logs.String(), `"key":"tickers[3]"`) {
		t.Errorf("invalid manual ticker not logged with its position:\n%s", logs)
	}
}

func TestProcessTickersRejectsBadEvents(t *testing.T) {
	for _, ev := range []string{`{"tickers":`, `{"tickers":"AAPL"}`, `{"tickers":[]}`, `{"tickers":null}`, `{"tickers":[1]}`, `not json`,
		`{"tickers":[` + strings.Repeat(`"A",`, pipeline.MaxManualTickers) + `"B"]}`} {
		t.Run(ev[:min(len(ev), 30)], func(t *testing.T) {
			src, pub := &fakeSource{res: scanned}, &fakePublisher{}
			p, _, _ := newCollector(src, pub)
			_, err := p.Handle(context.Background(), json.RawMessage(ev))
			if !errors.Is(err, pipeline.ErrBadEvent) {
				t.Fatalf("err = %v, want ErrBadEvent", err)
			}
			if src.calls != 0 || len(pub.got) != 0 {
				t.Error("a bad event scanned or queued")
			}
		})
	}
}

func TestProcessTickersReportsFailures(t *testing.T) {
	t.Run("messages not queued", func(t *testing.T) {
		pub := &fakePublisher{reject: map[string]bool{"NVDA": true}}
		p, logs, emf := newCollector(&fakeSource{res: scanned}, pub)
		sum, err := p.Handle(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), "1 of 4 messages not queued") {
			t.Fatalf("err = %v", err)
		}
		if sum.Queued != 2 || sum.Failed != 1 {
			t.Errorf("summary %+v", sum)
		}
		if !strings.Contains(logs.String(), `"ticker":"NVDA"`) || !strings.Contains(logs.String(), `"senderFault":true`) {
			t.Errorf("failure not logged:\n%s", logs)
		}
		if !strings.Contains(emf.String(), `"TickersQueued":2`) {
			t.Errorf("EMF %s", emf)
		}
	})
	t.Run("scan fails", func(t *testing.T) {
		pub := &fakePublisher{}
		p, _, _ := newCollector(&fakeSource{err: errors.New("scan portfolio-positions-dev (page 2): AccessDenied")}, pub)
		if _, err := p.Handle(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
			t.Fatalf("err = %v", err)
		}
		if len(pub.got) != 0 {
			t.Error("queued after a failed scan")
		}
	})
	t.Run("publish call fails", func(t *testing.T) {
		p, _, _ := newCollector(&fakeSource{res: scanned}, &fakePublisher{err: errors.New("NonExistentQueue")})
		if _, err := p.Handle(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "NonExistentQueue") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRunIDWithoutLambdaContextIsRandom(t *testing.T) {
	a, b := pipeline.RunID(context.Background()), pipeline.RunID(context.Background())
	if len(a) != 32 || a == b {
		t.Fatalf("run ids %q %q", a, b)
	}
}

// fakeNights is what the store knows of the night: known, whether the day
// is stored and whether the night fell back to per-ticker calls.
type fakeNights struct {
	known, stored, fallback bool
}

func (f *fakeNights) Night(_ context.Context, date string) (coverage.Night, bool, error) {
	return coverage.Night{Date: date, Fallback: f.fallback}, f.known, nil
}

func (f *fakeNights) Session(_ context.Context, date string) (coverage.Session, bool, error) {
	if !f.stored {
		return coverage.Session{}, false, nil
	}
	return coverage.Session{Date: date, Status: coverage.Stored}, true, nil
}

type fakeRows map[string]bool

func (f fakeRows) Stored(_ context.Context, tickers []string, _ string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, t := range tickers {
		if f[t] {
			out[t] = true
		}
	}
	return out, nil
}

// The catch-up run later in the night queues what is missing: the day
// message again only when the day is not published (or never asked for),
// and the tickers whose row of the day is not stored.
func TestProcessTickersCatchUp(t *testing.T) {
	for _, c := range []struct {
		name    string
		nights  fakeNights
		stored  fakeRows
		day     bool
		tickers []string
		status  string
	}{
		{"not published yet", fakeNights{known: true}, fakeRows{}, true, []string{"AAPL", "BRK.B", "NVDA"}, "notPublished"},
		{"never asked for", fakeNights{}, fakeRows{"AAPL": true}, true, []string{"BRK.B", "NVDA"}, ""},
		{"stored, one ticker missing", fakeNights{known: true, stored: true}, fakeRows{"AAPL": true, "NVDA": true}, false, []string{"BRK.B"}, "stored"},
		{"fallback", fakeNights{known: true, fallback: true}, fakeRows{"NVDA": true}, false, []string{"AAPL", "BRK.B"}, "fallback"},
		{"all stored", fakeNights{known: true, stored: true}, fakeRows{"AAPL": true, "BRK.B": true, "NVDA": true}, false, nil, "stored"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, pub := &fakeSource{res: scanned}, &fakePublisher{}
			p, logs, _ := newCollector(src, pub)
			nights := c.nights
			p.Nights, p.Rows = &nights, c.stored
			sum, err := p.Handle(context.Background(), json.RawMessage(`{"catchUp":true}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := pub.tickers(); !slices.Equal(got, c.tickers) {
				t.Errorf("queued %v, want %v", got, c.tickers)
			}
			wantDays := 0
			if c.day && len(c.tickers) > 0 {
				wantDays = 1
				if d := pub.days(); !slices.Equal(d[0].Tickers, c.tickers) {
					t.Errorf("day message carries %v", d[0].Tickers)
				}
			}
			if len(pub.days()) != wantDays || sum.DayMessages != wantDays || sum.Mode != "catch-up" || sum.DayStatus != c.status ||
				sum.AlreadyStored != 3-len(c.tickers) || sum.Queued != len(c.tickers) {
				t.Errorf("summary %+v, %d day messages", sum, len(pub.days()))
			}
			if !strings.Contains(logs.String(), `"msg":"catch-up: what the night still lacks"`) {
				t.Errorf("catch-up not logged:\n%s", logs)
			}
		})
	}
	t.Run("not configured", func(t *testing.T) {
		p, _, _ := newCollector(&fakeSource{res: scanned}, &fakePublisher{})
		if _, err := p.Handle(context.Background(), json.RawMessage(`{"catchUp":true}`)); !errors.Is(err, pipeline.ErrBadEvent) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestParseEvent(t *testing.T) {
	for ev, want := range map[string]pipeline.Event{
		``: {}, `{}`: {}, `{"catchUp":true}`: {CatchUp: true}, `{"catchUp":false}`: {},
		`{"tickers":["A"]}`: {Tickers: []string{"A"}, Manual: true},
	} {
		got, err := pipeline.ParseEvent([]byte(ev))
		if err != nil || got.CatchUp != want.CatchUp || got.Manual != want.Manual || !slices.Equal(got.Tickers, want.Tickers) {
			t.Errorf("ParseEvent(%s) = %+v, %v; want %+v", ev, got, err, want)
		}
	}
	for _, bad := range []string{`{"catchUp":"yes"}`, `{"catchUp":true,"tickers":["A"]}`} {
		if _, err := pipeline.ParseEvent([]byte(bad)); !errors.Is(err, pipeline.ErrBadEvent) {
			t.Errorf("ParseEvent(%s): %v", bad, err)
		}
	}
}

// One day message heads each message group, with that group's tickers; a
// group above queue.MaxDayTickers gets several parts.
func TestProcessTickersDayMessagePerGroupAndParts(t *testing.T) {
	var many []string
	for i := range queue.MaxDayTickers + 5 {
		many = append(many, fmt.Sprintf("T%05d", i))
	}
	src, pub := &fakeSource{res: pipeline.Holdings{Symbols: many}}, &fakePublisher{}
	p, _, _ := newCollector(src, pub)
	sum, err := p.Handle(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	days := pub.days()
	if len(days) != 2 || days[0].Parts != 2 || days[1].Part != 2 || len(days[0].Tickers) != queue.MaxDayTickers || len(days[1].Tickers) != 5 || sum.DayMessages != 2 {
		t.Fatalf("%d day messages (%+v)", len(days), sum)
	}
	if !pub.got[0].IsDay() || !pub.got[1].IsDay() {
		t.Error("day messages are not queued first")
	}

	src, pub = &fakeSource{res: scanned}, &fakePublisher{}
	p, _, _ = newCollector(src, pub)
	p.Groups = 4
	if _, err := p.Handle(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	covered := map[string]string{}
	for _, d := range pub.days() {
		for _, tk := range d.Tickers {
			covered[tk] = d.Group
		}
	}
	for _, tk := range scanned.Symbols {
		if covered[tk] != queue.GroupID(tk, 4) {
			t.Errorf("%s in the day message of group %q, its messages go to %q", tk, covered[tk], queue.GroupID(tk, 4))
		}
	}
}
