// Package metrics emits the service's custom CloudWatch metrics in Embedded
// Metric Format (EMF): one JSON log line per flush, which CloudWatch turns
// into metrics with no API call and no added latency. The metrics themselves
// (names, units, namespace, dimension) are the deployment contract's
// (deploy.Metrics), which the stack's alarms and dashboard watch.
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
)

// Recorder accumulates metric values during one invocation and writes them as
// one EMF document. It is safe for concurrent use, and a nil Recorder records
// nothing. The zero value is not usable; call New.
type Recorder struct {
	mu     sync.Mutex
	w      io.Writer
	stage  string
	values map[string]float64
	units  map[string]deploy.Unit
	now    func() time.Time
}

// New returns a Recorder writing EMF documents to w with the given stage.
func New(w io.Writer, stage string) *Recorder {
	return &Recorder{w: w, stage: stage, values: map[string]float64{}, units: map[string]deploy.Unit{}, now: time.Now}
}

// Add adds v to metric m.
func (r *Recorder) Add(m deploy.Metric, v float64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values[m.Name] += v
	r.units[m.Name] = m.Unit
}

// Snapshot returns the values accumulated since the last Flush, by name.
func (r *Recorder) Snapshot() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.values)
}

// Flush writes the accumulated values as one EMF line and resets them.
// Nothing is written when nothing was recorded.
func (r *Recorder) Flush() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.values) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(r.values))
	defs := make([]map[string]string, 0, len(names))
	doc := map[string]any{deploy.MetricDimension: r.stage}
	for _, n := range names {
		defs = append(defs, map[string]string{"Name": n, "Unit": string(r.units[n])})
		doc[n] = r.values[n]
	}
	doc["_aws"] = map[string]any{
		"Timestamp": r.now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  deploy.MetricNamespace,
			"Dimensions": [][]string{{deploy.MetricDimension}},
			"Metrics":    defs,
		}},
	}
	line, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode EMF document: %w", err)
	}
	clear(r.values)
	clear(r.units)
	if _, err := r.w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write EMF document: %w", err)
	}
	return nil
}

// Transport returns an http.RoundTripper over base (nil:
// http.DefaultTransport) that counts every request it sends as calls and
// every answer HTTP 429 Too Many Requests as throttled. The wiring builds a
// provider's adapter on it, so the provider's call and rate-limit metrics,
// and the alarm on them, do not depend on the adapter remembering them.
func (r *Recorder) Transport(base http.RoundTripper, calls, throttled deploy.Metric) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &countingTransport{base: base, rec: r, calls: calls, throttled: throttled}
}

type countingTransport struct {
	base             http.RoundTripper
	rec              *Recorder
	calls, throttled deploy.Metric
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.rec.Add(t.calls, 1)
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		t.rec.Add(t.throttled, 1)
	}
	return resp, err
}
