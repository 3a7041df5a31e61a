package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/config"
	"github.com/zsmseven/backend/pkg/functions"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/tickerdata"
)

// memStore keeps the rows written.
type memStore struct{ rows []tickerdata.Row }

func (m *memStore) Put(_ context.Context, r tickerdata.Row) error {
	m.rows = append(m.rows, r)
	return nil
}

type staticKeys string

func (k staticKeys) Get(context.Context, string) (string, error) { return string(k), nil }

func msg(t *testing.T, ticker string) string {
	t.Helper()
	b, err := queue.New(ticker, "run-1", time.Now()).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The Polygon client's error classes, as the batch handler sees them through
// the real client and a local Polygon: 401/403/no data are acknowledged and
// counted, a 503 that outlasts the client's retries is handed back, a 429
// followed by success is stored.
func TestProcessTickerClassifiesPolygonErrors(t *testing.T) {
	const key = "pk-live-classes"
	poly := fakepolygon.New(t, fakepolygon.Options{Key: key})
	poly.EnqueueFor("NOAUTH", fakepolygon.JSON(403, `{"status":"NOT_AUTHORIZED","request_id":"r1","message":"You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"}`))
	poly.EnqueueFor("NONE", fakepolygon.JSON(200, `{"ticker":"NONE","queryCount":0,"resultsCount":0,"adjusted":true,"status":"OK","request_id":"r2"}`))
	unavailable := fakepolygon.JSON(503, `{"status":"ERROR","error":"service unavailable"}`)
	poly.EnqueueFor("DOWN", unavailable, unavailable, unavailable, unavailable, unavailable, unavailable)
	poly.EnqueueFor("SLOWED", fakepolygon.JSON(429, fakepolygon.BodyRateLimited))

	var out bytes.Buffer
	store := &memStore{}
	h, err := functions.NewProcessTicker(functions.TickerDeps{
		Config: config.ProcessTicker{Stage: "test", PolygonBaseURL: poly.URL, PolygonHistoryDays: 400, RecordBudget: time.Second},
		Store:  store, Keys: staticKeys(key), Out: &out,
		PolygonOptions: func(o *polygon.Options) {
			o.Retry.Sleep = func(context.Context, time.Duration) error { return nil } // retry at once
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	for _, tk := range []string{"AAPL", "NOAUTH", "NONE", "DOWN", "SLOWED"} {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: "id-" + tk, Body: msg(t, tk), EventSourceARN: "arn:aws:sqs:us-east-1:0:q"})
	}
	resp, err := h(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	if !slices.Equal(ids, []string{"id-DOWN"}) {
		t.Errorf("handed back %v, want [id-DOWN]", ids)
	}
	var stored []string
	for _, r := range store.rows {
		stored = append(stored, r.Ticker)
	}
	if !slices.Equal(stored, []string{"AAPL", "SLOWED"}) {
		t.Errorf("stored %v, want [AAPL SLOWED]", stored)
	}
	var emf map[string]any
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, `"_aws"`) {
			if err := json.Unmarshal([]byte(line), &emf); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range map[string]float64{"TickersProcessed": 2, "PermanentFailures": 2, "TransientFailures": 1, "PolygonThrottled": 1} {
		if emf[name] != want {
			t.Errorf("metric %s = %v, want %v", name, emf[name], want)
		}
	}
	if strings.Contains(out.String(), key) {
		t.Error("the key appears in the output")
	}
}
