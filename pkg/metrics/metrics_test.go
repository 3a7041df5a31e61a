package metrics

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
)

// emfDoc is the part of the EMF specification the service relies on
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
type emfDoc struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

func TestFlushWritesOneEMFDocument(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, "dev")
	r.now = func() time.Time { return time.UnixMilli(1764374400000) }
	r.Add(deploy.TickersProcessed, 2)
	r.Add(deploy.TickersProcessed, 3)
	r.Add(deploy.LLMCostUSD, 0.25)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	line := buf.Bytes()
	if bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("want exactly one line, got %q", line)
	}
	var doc emfDoc
	if err := json.Unmarshal(line, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	var values map[string]any
	_ = json.Unmarshal(line, &values)
	if values[deploy.TickersProcessed.Name] != 5.0 || values[deploy.LLMCostUSD.Name] != 0.25 || values["Stage"] != "dev" {
		t.Fatalf("values %v", values)
	}
	cw := doc.AWS.CloudWatchMetrics
	if doc.AWS.Timestamp != 1764374400000 || len(cw) != 1 || cw[0].Namespace != "ZSMSeven/Backend" ||
		len(cw[0].Dimensions) != 1 || cw[0].Dimensions[0][0] != "Stage" || len(cw[0].Metrics) != 2 {
		t.Fatalf("EMF metadata %+v", doc.AWS)
	}
	units := map[string]string{}
	for _, m := range cw[0].Metrics {
		units[m.Name] = m.Unit
	}
	if units["TickersProcessed"] != "Count" || units["LLMCostUSD"] != "None" {
		t.Fatalf("units %v", units)
	}
}

func TestFlushResetsAndSkipsEmpty(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, "prod")
	if err := r.Flush(); err != nil || buf.Len() != 0 {
		t.Fatalf("empty flush wrote %q, %v", buf.String(), err)
	}
	r.Add(deploy.MarketDataCalls, 1)
	_ = r.Flush()
	buf.Reset()
	_ = r.Flush()
	if buf.Len() != 0 || len(r.Snapshot()) != 0 {
		t.Fatalf("values survived a flush: %q", buf.String())
	}
}

func TestNilRecorderIsANoOp(t *testing.T) {
	var r *Recorder
	r.Add(deploy.MarketDataCalls, 1)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentAdds(t *testing.T) {
	r := New(&bytes.Buffer{}, "dev")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				r.Add(deploy.MarketDataCalls, 1)
			}
		})
	}
	wg.Wait()
	if got := r.Snapshot()["MarketDataCalls"]; got != 8000 {
		t.Fatalf("MarketDataCalls = %v, want 8000", got)
	}
}

// The decorator counts what crosses the wire, whatever adapter sends it:
// every request (retries included) and every 429.
func TestTransportCountsCallsAndThrottles(t *testing.T) {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n++
		if n%2 == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	r := New(&bytes.Buffer{}, "dev")
	client := &http.Client{Transport: r.Transport(nil, deploy.MarketDataCalls, deploy.MarketDataThrottled)}
	for range 5 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A request that never reaches a server is still a call, not a 429.
	if _, err := client.Get("http://127.0.0.1:1/"); err == nil {
		t.Fatal("a closed port answered")
	}
	got := r.Snapshot()
	if got["MarketDataCalls"] != 6 || got["MarketDataThrottled"] != 2 {
		t.Fatalf("calls %v, throttled %v; want 6 and 2", got["MarketDataCalls"], got["MarketDataThrottled"])
	}
}
