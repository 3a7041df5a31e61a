package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/queue"
)

type fakeSource struct {
	res   portfoliodb.ScanResult
	err   error
	calls int
}

func (f *fakeSource) ScanSymbols(context.Context) (portfoliodb.ScanResult, error) {
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

func (f *fakePublisher) tickers() []string {
	var out []string
	for _, m := range f.got {
		out = append(out, m.Ticker)
	}
	return out
}

var scanned = portfoliodb.ScanResult{ItemsScanned: 2604, Pages: 4, Symbols: []string{"AAPL", "BRK.B", "NVDA"},
	Invalid: []portfoliodb.Invalid{
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
			want := pipeline.Summary{RunID: "req-9", Mode: "scan", ItemsScanned: 2604, Pages: 4, SymbolsFound: 3, Queued: 3, Invalid: 2}
			if sum != want {
				t.Errorf("summary %+v\nwant    %+v", sum, want)
			}
			if src.calls != 1 || !slices.Equal(pub.tickers(), []string{"AAPL", "BRK.B", "NVDA"}) {
				t.Errorf("scans %d, queued %v", src.calls, pub.tickers())
			}
			for _, m := range pub.got {
				if m.V != 1 || m.RunID != "req-9" || !m.EnqueuedAt.Equal(time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC)) {
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
	sum, err := p.Handle(context.Background(), json.RawMessage(`{"tickers":["msft"," AAPL ","AAPL","DROP TABLE",""]}`))
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
		if err == nil || !strings.Contains(err.Error(), "1 of 3 messages not queued") {
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
