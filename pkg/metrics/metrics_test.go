package metrics

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"
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
	r.Add(TickersProcessed, 2)
	r.Add(TickersProcessed, 3)
	r.AddValue(LLMCostUSD, 0.25, "None")
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
	if values[TickersProcessed] != 5.0 || values[LLMCostUSD] != 0.25 || values[DimensionStage] != "dev" {
		t.Fatalf("values %v", values)
	}
	cw := doc.AWS.CloudWatchMetrics
	if doc.AWS.Timestamp != 1764374400000 || len(cw) != 1 || cw[0].Namespace != Namespace ||
		len(cw[0].Dimensions) != 1 || cw[0].Dimensions[0][0] != DimensionStage || len(cw[0].Metrics) != 2 {
		t.Fatalf("EMF metadata %+v", doc.AWS)
	}
	units := map[string]string{}
	for _, m := range cw[0].Metrics {
		units[m.Name] = m.Unit
	}
	if units[TickersProcessed] != "Count" || units[LLMCostUSD] != "None" {
		t.Fatalf("units %v", units)
	}
}

func TestFlushResetsAndSkipsEmpty(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, "prod")
	if err := r.Flush(); err != nil || buf.Len() != 0 {
		t.Fatalf("empty flush wrote %q, %v", buf.String(), err)
	}
	r.Add(PolygonCalls, 1)
	_ = r.Flush()
	buf.Reset()
	_ = r.Flush()
	if buf.Len() != 0 || len(r.Snapshot()) != 0 {
		t.Fatalf("values survived a flush: %q", buf.String())
	}
}

func TestNilRecorderIsANoOp(t *testing.T) {
	var r *Recorder
	r.Add(PolygonCalls, 1)
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
				r.Add(PolygonCalls, 1)
			}
		})
	}
	wg.Wait()
	if got := r.Snapshot()[PolygonCalls]; got != 8000 {
		t.Fatalf("PolygonCalls = %v, want 8000", got)
	}
}
