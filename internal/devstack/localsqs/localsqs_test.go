package localsqs_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
)

const fifoName = "ticker-processing-queue-local.fifo"

func start(t *testing.T, opts localsqs.Options) *localsqs.Server {
	t.Helper()
	s, err := localsqs.Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// sdkClient is the real AWS SDK client, configured as processTickers is
// locally (endpoint override, dummy credentials).
func sdkClient(s *localsqs.Server) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint()),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
}

func TestSDKSendMessageBatchFIFO(t *testing.T) {
	s := start(t, localsqs.Options{})
	url := s.CreateQueue(fifoName)
	if want := s.Endpoint() + "/000000000000/" + fifoName; url != want {
		t.Fatalf("queue URL %q, want %q", url, want)
	}
	c := sdkClient(s)
	ctx := context.Background()
	var entries []types.SendMessageBatchRequestEntry
	for i, tk := range []string{"AAPL", "MSFT", "NVDA"} {
		entries = append(entries, types.SendMessageBatchRequestEntry{
			Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(`{"v":1,"ticker":"` + tk + `"}`),
			MessageGroupId: aws.String("tickers"), MessageDeduplicationId: aws.String("run1/" + tk),
		})
	}
	// The SDK verifies MD5OfMessageBody of every successful entry; a wrong
	// digest would make this call fail.
	out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	if err != nil {
		t.Fatalf("SendMessageBatch: %v", err)
	}
	if len(out.Successful) != 3 || len(out.Failed) != 0 {
		t.Fatalf("successful %d failed %d", len(out.Successful), len(out.Failed))
	}
	for _, r := range out.Successful {
		if aws.ToString(r.SequenceNumber) == "" || aws.ToString(r.MessageId) == "" {
			t.Errorf("entry %s lacks message id or sequence number", aws.ToString(r.Id))
		}
	}
	// A single SendMessage too.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("one"),
		MessageGroupId: aws.String("tickers"), MessageDeduplicationId: aws.String("single")}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	ev, err := s.Receive(fifoName, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) != 4 {
		t.Fatalf("received %d records, want 4", len(ev.Records))
	}
	r := ev.Records[0]
	sum := md5.Sum([]byte(r.Body))
	switch {
	case r.Body != `{"v":1,"ticker":"AAPL"}`:
		t.Errorf("first body %q (FIFO order lost)", r.Body)
	case r.Md5OfBody != hex.EncodeToString(sum[:]):
		t.Errorf("md5OfBody %q", r.Md5OfBody)
	case r.EventSourceARN != "arn:aws:sqs:us-east-1:000000000000:"+fifoName:
		t.Errorf("eventSourceARN %q", r.EventSourceARN)
	case r.EventSource != "aws:sqs" || r.AWSRegion != "us-east-1":
		t.Errorf("eventSource %q region %q", r.EventSource, r.AWSRegion)
	case r.Attributes["MessageGroupId"] != "tickers" || r.Attributes["MessageDeduplicationId"] != "run1/AAPL":
		t.Errorf("attributes %v", r.Attributes)
	case r.Attributes["ApproximateReceiveCount"] != "1" || r.Attributes["SequenceNumber"] == "":
		t.Errorf("attributes %v", r.Attributes)
	case r.ReceiptHandle == "" || r.MessageId != aws.ToString(out.Successful[0].MessageId):
		t.Errorf("receipt %q id %q", r.ReceiptHandle, r.MessageId)
	}
}

func TestSDKErrors(t *testing.T) {
	s := start(t, localsqs.Options{})
	url := s.CreateQueue(fifoName)
	std := s.CreateQueue("standard-queue")
	c := sdkClient(s)
	ctx := context.Background()

	// Unknown queue: the SDK maps the JSON error to its typed error.
	_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.QueueURL("nope")), MessageBody: aws.String("x")})
	var dne *types.QueueDoesNotExist
	if !errors.As(err, &dne) {
		t.Errorf("unknown queue: got %v, want QueueDoesNotExist", err)
	}
	// FIFO needs a group id and a dedup id: reported per entry.
	out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("nogroup"), MessageBody: aws.String("a"), MessageDeduplicationId: aws.String("d1")},
		{Id: aws.String("nodedup"), MessageBody: aws.String("b"), MessageGroupId: aws.String("g")},
		{Id: aws.String("ok"), MessageBody: aws.String("c"), MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d3")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, f := range out.Failed {
		codes[aws.ToString(f.Id)] = aws.ToString(f.Code)
	}
	if codes["nogroup"] != "MissingParameter" || codes["nodedup"] != "InvalidParameterValue" || len(out.Successful) != 1 {
		t.Errorf("failed %v successful %d", codes, len(out.Successful))
	}
	// Batch-level validation.
	var many []types.SendMessageBatchRequestEntry
	for i := range 11 {
		many = append(many, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String("x")})
	}
	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(std), Entries: many})
	var tooMany *types.TooManyEntriesInBatchRequest
	if !errors.As(err, &tooMany) {
		t.Errorf("11 entries: got %v", err)
	}
	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(std), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("x")}, {Id: aws.String("a"), MessageBody: aws.String("y")}}})
	var notDistinct *types.BatchEntryIdsNotDistinct
	if !errors.As(err, &notDistinct) {
		t.Errorf("repeated ids: got %v", err)
	}
	// A standard queue needs neither group nor dedup id.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(std), MessageBody: aws.String("x")}); err != nil {
		t.Errorf("standard queue: %v", err)
	}
	// Anything but the JSON protocol is refused.
	resp, err := http.Post(s.Endpoint()+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=SendMessage"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("query protocol: status %d", resp.StatusCode)
	}
}

func TestFIFODedupWindow(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 11, 27, 21, 30, 0, 0, time.UTC))
	s := start(t, localsqs.Options{Clock: clk})
	url := s.CreateQueue(fifoName)
	c := sdkClient(s)
	ctx := context.Background()
	send := func(body, dedup string) string {
		t.Helper()
		out, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
			MessageGroupId: aws.String("tickers"), MessageDeduplicationId: aws.String(dedup)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.MessageId)
	}
	first := send("AAPL", "run1/AAPL")
	clk.Advance(4 * time.Minute)
	if again := send("AAPL", "run1/AAPL"); again != first {
		t.Errorf("duplicate within 5 min got a new id %s (first %s)", again, first)
	}
	if got := s.Counts(fifoName).Visible; got != 1 {
		t.Fatalf("after duplicate: %d visible, want 1", got)
	}
	clk.Advance(2 * time.Minute) // 6 min after the first send
	if again := send("AAPL", "run1/AAPL"); again == first {
		t.Error("same dedup id after the window was deduplicated")
	}
	if got := s.Counts(fifoName).Visible; got != 2 {
		t.Fatalf("after window: %d visible, want 2", got)
	}
	send("MSFT", "run1/MSFT")
	if got := strings.Join(s.Visible(fifoName), ","); got != "AAPL,AAPL,MSFT" {
		t.Errorf("visible bodies %s, want AAPL,AAPL,MSFT in order", got)
	}
	if s.Visible("no-such-queue") != nil {
		t.Error("bodies of an unknown queue")
	}
}

// enqueue puts n FIFO messages m0..m(n-1) in one group.
func enqueue(t *testing.T, s *localsqs.Server, n int) {
	t.Helper()
	url := s.CreateQueue(fifoName)
	c := sdkClient(s)
	for i := range n {
		if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url),
			MessageBody: aws.String(fmt.Sprintf("m%d", i)), MessageGroupId: aws.String("tickers"),
			MessageDeduplicationId: aws.String(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

func bodies(ev events.SQSEvent) []string {
	var out []string
	for _, r := range ev.Records {
		out = append(out, r.Body)
	}
	return out
}

func TestBatchesAndGroupBlocking(t *testing.T) {
	s := start(t, localsqs.Options{})
	enqueue(t, s, 12)
	ev, err := s.Receive(fifoName, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) != 10 {
		t.Fatalf("first batch %d records, want 10", len(ev.Records))
	}
	// The group has messages in flight: nothing more until it is settled.
	if ev2, _ := s.Receive(fifoName, 10); len(ev2.Records) != 0 {
		t.Fatalf("group in flight but got %v", bodies(ev2))
	}
	if _, err := s.Settle(fifoName, ev, events.SQSEventResponse{}, nil); err != nil {
		t.Fatal(err)
	}
	ev3, _ := s.Receive(fifoName, 10)
	if got := strings.Join(bodies(ev3), ","); got != "m10,m11" {
		t.Fatalf("second batch %s", got)
	}
	if _, err := s.Receive("missing", 1); !errors.Is(err, localsqs.ErrNoQueue) {
		t.Errorf("unknown queue: %v", err)
	}
}

func TestSettle(t *testing.T) {
	tests := []struct {
		name       string
		failIdx    []int // records (by index) named in batchItemFailures
		unknownID  bool  // add an id that is not in the batch
		handlerErr error
		want       localsqs.Outcome
		wantNext   string // bodies visible afterwards, in order
	}{
		{name: "all succeed", want: localsqs.Outcome{Deleted: 4}},
		{name: "tail fails", failIdx: []int{2, 3}, want: localsqs.Outcome{Deleted: 2, Requeued: 2}, wantNext: "m2,m3"},
		{name: "handler error fails all", handlerErr: errors.New("boom"), want: localsqs.Outcome{Requeued: 4}, wantNext: "m0,m1,m2,m3"},
		{name: "unknown id fails all", unknownID: true, want: localsqs.Outcome{Requeued: 4}, wantNext: "m0,m1,m2,m3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, localsqs.Options{})
			enqueue(t, s, 4)
			ev, _ := s.Receive(fifoName, 10)
			var resp events.SQSEventResponse
			for _, i := range tt.failIdx {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: ev.Records[i].MessageId})
			}
			if tt.unknownID {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: "not-in-batch"})
			}
			got, err := s.Settle(fifoName, ev, resp, tt.handlerErr)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("outcome %+v, want %+v", got, tt.want)
			}
			next, _ := s.Receive(fifoName, 10)
			if b := strings.Join(bodies(next), ","); b != tt.wantNext {
				t.Errorf("visible afterwards %q, want %q", b, tt.wantNext)
			}
			for _, r := range next.Records {
				if r.Attributes["ApproximateReceiveCount"] != "2" {
					t.Errorf("%s receive count %s, want 2", r.Body, r.Attributes["ApproximateReceiveCount"])
				}
			}
			// Settling the same batch twice is an error, not a silent delete.
			if _, err := s.Settle(fifoName, ev, resp, tt.handlerErr); err == nil {
				t.Error("second settle of the same batch succeeded")
			}
		})
	}
}

func TestDrainDeadLettersAfterMaxReceiveCount(t *testing.T) {
	s := start(t, localsqs.Options{MaxReceiveCount: 3})
	enqueue(t, s, 3)
	calls := 0
	// m1 always fails: it and everything after it go back (the FIFO rule),
	// until the receive count reaches three. m2 rides along behind m1 and so
	// reaches the DLQ as well: the price of the FIFO rule that the consumer
	// avoids by retrying transient errors in process first.
	h := func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		calls++
		var resp events.SQSEventResponse
		failing := false
		for _, r := range ev.Records {
			failing = failing || r.Body == "m1"
			if failing {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		return resp, nil
	}
	tot, err := s.Drain(context.Background(), fifoName, 10, h)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.DeadLetters(fifoName), ","); got != "m1,m2" {
		t.Errorf("dead letters %v, want m1,m2", got)
	}
	// Batches: [m0 m1 m2] [m1 m2] [m1 m2] → third receive of both: dead.
	want := localsqs.Totals{Batches: 3, Outcome: localsqs.Outcome{Deleted: 1, Requeued: 4, DeadLettered: 2}, Peak: 1}
	if tot != want || calls != 3 {
		t.Errorf("totals %+v calls %d, want %+v", tot, calls, want)
	}
	if c := s.Counts(fifoName); c != (localsqs.Counts{Dead: 2}) {
		t.Errorf("counts %+v", c)
	}
}

func TestDrainStopsOnCancel(t *testing.T) {
	s := start(t, localsqs.Options{})
	enqueue(t, s, 2)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := s.Drain(ctx, fifoName, 1, func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
		cancel()
		return events.SQSEventResponse{}, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if c := s.Counts(fifoName); c.Visible != 1 {
		t.Errorf("counts %+v, want one left", c)
	}
}

// DrainConcurrent runs up to the given number of handlers at once, settles
// each batch, retries failures and dead-letters a record that keeps failing.
func TestDrainConcurrent(t *testing.T) {
	s, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	url := s.CreateQueue("work")
	c := sqs.New(sqs.Options{Region: localsqs.Region, BaseEndpoint: aws.String(s.Endpoint()), Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	for i := range 40 {
		if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(fmt.Sprintf("m%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	calls := map[string]int{}
	tot, err := s.DrainConcurrent(context.Background(), "work", 1, 5, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		var resp events.SQSEventResponse
		for _, r := range ev.Records {
			calls[r.Body]++
			if r.Body == "m7" || (r.Body == "m8" && calls[r.Body] == 1) {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		return resp, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Deleted != 39 || tot.DeadLettered != 1 || tot.Requeued != 5 || tot.Peak != 5 {
		t.Errorf("totals %+v: want 39 deleted, m7 dead-lettered after 5 receives (4 requeues) plus m8's one, peak 5", tot)
	}
	if calls["m7"] != localsqs.DefaultMaxReceiveCount || calls["m8"] != 2 {
		t.Errorf("m7 received %d times, m8 %d", calls["m7"], calls["m8"])
	}
	if c := s.Counts("work"); c.Visible != 0 || c.InFlight != 0 || c.Dead != 1 {
		t.Errorf("counts %+v", c)
	}
}

// With a visibility timeout, a record handed back without a visibility
// change waits it out on the server's clock — and its FIFO group with it —
// while one released with ChangeMessageVisibilityBatch (through the SDK, as
// processTicker does) is visible at once.
func TestVisibilityTimeoutAndChangeMessageVisibility(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC))
	s := start(t, localsqs.Options{VisibilityTimeout: 1080 * time.Second, Clock: clock})
	enqueue(t, s, 4)
	url := s.QueueURL(fifoName)
	ev, _ := s.Receive(fifoName, 10)
	// m0 succeeds; m1 (refused key) is handed back as it is; m2 and m3
	// (unstarted) are handed back and released.
	c := sdkClient(s)
	out, err := c.ChangeMessageVisibilityBatch(context.Background(), &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url),
		Entries: []types.ChangeMessageVisibilityBatchRequestEntry{
			{Id: aws.String("a"), ReceiptHandle: aws.String(ev.Records[2].ReceiptHandle), VisibilityTimeout: 0},
			{Id: aws.String("b"), ReceiptHandle: aws.String(ev.Records[3].ReceiptHandle), VisibilityTimeout: 0},
			{Id: aws.String("c"), ReceiptHandle: aws.String("no-such-handle"), VisibilityTimeout: 0},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 2 || len(out.Failed) != 1 || aws.ToString(out.Failed[0].Code) != "ReceiptHandleIsInvalid" {
		t.Fatalf("batch answer %+v", out)
	}
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{
		{ItemIdentifier: ev.Records[1].MessageId}, {ItemIdentifier: ev.Records[2].MessageId}, {ItemIdentifier: ev.Records[3].MessageId}}}
	if _, err := s.Settle(fifoName, ev, resp, nil); err != nil {
		t.Fatal(err)
	}
	// m1 is hidden: the group yields nothing, though m2 and m3 are visible.
	if c := s.Counts(fifoName); c.Visible != 2 || c.InFlight != 1 {
		t.Fatalf("counts %+v", c)
	}
	if next, _ := s.Receive(fifoName, 10); len(next.Records) != 0 {
		t.Fatalf("the FIFO group handed out %v while m1 waits", bodies(next))
	}
	totals, err := s.Drain(context.Background(), fifoName, 10, func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
		t.Fatal("drained a blocked group")
		return events.SQSEventResponse{}, nil
	})
	if err != nil || totals.Waiting != 1 {
		t.Fatalf("drain %+v %v, want 1 waiting", totals, err)
	}
	clock.Advance(1079 * time.Second)
	if next, _ := s.Receive(fifoName, 10); len(next.Records) != 0 {
		t.Fatal("m1 came back before its visibility timeout")
	}
	clock.Advance(time.Second)
	next, _ := s.Receive(fifoName, 10)
	if got := strings.Join(bodies(next), ","); got != "m1,m2,m3" {
		t.Fatalf("after the timeout %s, want m1,m2,m3 in order", got)
	}
	// A single change, and a bad value.
	if _, err := c.ChangeMessageVisibility(context.Background(), &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url),
		ReceiptHandle: aws.String(next.Records[0].ReceiptHandle), VisibilityTimeout: 60}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ChangeMessageVisibility(context.Background(), &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url),
		ReceiptHandle: aws.String(next.Records[0].ReceiptHandle), VisibilityTimeout: 43201}); err == nil || !strings.Contains(err.Error(), "InvalidParameterValue") {
		t.Fatalf("a timeout of 43201 s: %v", err)
	}
}

// A standard queue hands its messages out in the order Pick chooses (SQS
// does not promise its order): newest first here; a FIFO queue keeps its
// order whatever Pick says.
func TestStandardQueueOutOfOrder(t *testing.T) {
	s := start(t, localsqs.Options{})
	url := s.CreateQueueWith("analysis-queue", localsqs.QueueOptions{Pick: localsqs.NewestFirst})
	s.CreateQueueWith(fifoName, localsqs.QueueOptions{Pick: localsqs.NewestFirst})
	c := sdkClient(s)
	for i := range 4 {
		if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(fmt.Sprintf("m%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(t, s, 3)
	ev, err := s.Receive("analysis-queue", 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(bodies(ev), ","); got != "m3,m2,m1" {
		t.Errorf("standard queue, newest first: %s", got)
	}
	if _, err := s.Settle("analysis-queue", ev, events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: ev.Records[0].MessageId}}}, nil); err != nil {
		t.Fatal(err)
	}
	ev, _ = s.Receive("analysis-queue", 10)
	if got := strings.Join(bodies(ev), ","); got != "m3,m0" {
		t.Errorf("after m3 was handed back: %s, want it again first (the newest), then m0", got)
	}
	ev, _ = s.Receive(fifoName, 10)
	if got := strings.Join(bodies(ev), ","); got != "m0,m1,m2" {
		t.Errorf("FIFO keeps its order: %s", got)
	}
}
