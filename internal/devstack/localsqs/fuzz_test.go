package localsqs_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/internal/devstack/localsqs"
)

var emptyResponse events.SQSEventResponse

// FuzzServeHTTP feeds arbitrary request bodies to every supported operation:
// the server must answer 200 with a JSON object or 400 with the protocol's
// error shape, never panic, and never accept a FIFO message without its ids.
func FuzzServeHTTP(f *testing.F) {
	for _, seed := range []struct{ target, body string }{
		{"AmazonSQS.SendMessageBatch", `{"QueueUrl":"http://x/000000000000/q.fifo","Entries":[{"Id":"0","MessageBody":"{\"v\":1}","MessageGroupId":"tickers","MessageDeduplicationId":"d"}]}`},
		{"AmazonSQS.SendMessageBatch", `{"QueueUrl":"http://x/000000000000/q.fifo","Entries":[]}`},
		{"AmazonSQS.SendMessageBatch", `{"QueueUrl":"http://x/000000000000/q.fifo","Entries":[{"Id":"a","MessageBody":"x"},{"Id":"a","MessageBody":"y"}]}`},
		{"AmazonSQS.SendMessage", `{"QueueUrl":"http://x/000000000000/q.fifo","MessageBody":"x","MessageGroupId":"g","MessageDeduplicationId":"d","MessageAttributes":{"k":{"DataType":"Binary","BinaryValue":"AAE="}}}`},
		{"AmazonSQS.SendMessage", `{"QueueUrl":"http://x/000000000000/nope","MessageBody":"x"}`},
		{"AmazonSQS.GetQueueUrl", `{"QueueName":"q.fifo"}`},
		{"AmazonSQS.ReceiveMessage", `{}`},
		{"AmazonSQS.SendMessage", `{"QueueUrl":`},
		{"AmazonSQS.SendMessage", `null`},
	} {
		f.Add(seed.target, seed.body)
	}
	s, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	s.CreateQueue("q.fifo")
	f.Fuzz(func(t *testing.T, target, body string) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		req.Header.Set("X-Amz-Target", target)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("status %d, body is not a JSON object: %q", w.Code, w.Body.String())
		}
		switch w.Code {
		case http.StatusOK:
		case http.StatusBadRequest:
			if typ, _ := out["__type"].(string); !strings.HasPrefix(typ, "com.amazonaws.sqs#") {
				t.Fatalf("400 without an SQS error type: %q", w.Body.String())
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
		// Whatever was accepted into the FIFO queue carries both ids.
		ev, err := s.Receive("q.fifo", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ev.Records {
			if r.Attributes["MessageGroupId"] == "" || r.Attributes["MessageDeduplicationId"] == "" {
				t.Fatalf("FIFO message without ids: %+v", r)
			}
		}
		if _, err := s.Settle("q.fifo", ev, emptyResponse, nil); err != nil {
			t.Fatal(err)
		}
	})
}
