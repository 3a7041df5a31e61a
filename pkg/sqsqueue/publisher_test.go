package sqsqueue

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
)

// fakeSQS accepts entries except those its fail function rejects.
type fakeSQS struct {
	calls    []*sqs.SendMessageBatchInput
	accepted []types.SendMessageBatchRequestEntry
	// fail decides per entry (by call number, 1-based) whether SQS reports it
	// failed and whether that is the sender's fault.
	fail func(call int, e types.SendMessageBatchRequestEntry) (failed, senderFault bool)
	err  error
	// sends are the SendMessage inputs.
	sends []*sqs.SendMessageInput
}

func (f *fakeSQS) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.calls = append(f.calls, in)
	if f.err != nil {
		return nil, f.err
	}
	if len(in.Entries) > queue.MaxBatch {
		return nil, fmt.Errorf("AWS.SimpleQueueService.TooManyEntriesInBatchRequest: %d", len(in.Entries))
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		if f.fail != nil {
			if failed, sf := f.fail(len(f.calls), e); failed {
				out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), Message: aws.String("try again"), SenderFault: sf})
				continue
			}
		}
		f.accepted = append(f.accepted, e)
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String("m-" + *e.Id)})
	}
	return out, nil
}

// SendMessage records single sends (the requeuer's).
func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.sends = append(f.sends, in)
	if f.err != nil {
		return nil, f.err
	}
	return &sqs.SendMessageOutput{MessageId: aws.String(fmt.Sprint("s-", len(f.sends)))}, nil
}

func messages(n int) []queue.Message {
	at := time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC)
	ms := make([]queue.Message, n)
	for i := range ms {
		ms[i] = queue.New(fmt.Sprintf("T%03d", i), "run-1", at)
	}
	return ms
}

// noWait retries at once: the tests assert attempts, not durations.
var noWait = retry.Policy{Attempts: 4, Sleep: func(context.Context, time.Duration) error { return nil }}

func TestPublishSendsBatchesOfTen(t *testing.T) {
	tests := []struct {
		n       int
		batches []int
	}{{0, nil}, {1, []int{1}}, {10, []int{10}}, {11, []int{10, 1}}, {25, []int{10, 10, 5}}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			f := &fakeSQS{}
			p := NewPublisher(f, "https://sqs.us-east-1.amazonaws.com/123/ticker-processing-queue-dev", PublisherOptions{Retry: noWait})
			res, err := p.Publish(context.Background(), messages(tt.n))
			if err != nil {
				t.Fatal(err)
			}
			var sizes []int
			for _, c := range f.calls {
				sizes = append(sizes, len(c.Entries))
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tt.batches) {
				t.Errorf("batch sizes %v, want %v", sizes, tt.batches)
			}
			if res.Queued != tt.n || len(res.Failed) != 0 || res.Batches != len(tt.batches) {
				t.Errorf("result %+v", res)
			}
			for _, e := range f.accepted {
				if e.MessageGroupId != nil || e.MessageDeduplicationId != nil {
					t.Errorf("standard queue entry carries FIFO ids: %+v", e)
				}
				if _, err := queue.Decode([]byte(*e.MessageBody)); err != nil {
					t.Errorf("body %s: %v", *e.MessageBody, err)
				}
			}
		})
	}
}

func TestPublishResendsEntriesReportedFailed(t *testing.T) {
	// T001 and T004 fail on the first call, T004 again on the second.
	f := &fakeSQS{fail: func(call int, e types.SendMessageBatchRequestEntry) (bool, bool) {
		body := *e.MessageBody
		return (call == 1 && (strings.Contains(body, "T001") || strings.Contains(body, "T004"))) ||
			(call == 2 && strings.Contains(body, "T004")), false
	}}
	p := NewPublisher(f, "https://sqs/q", PublisherOptions{Retry: noWait})
	res, err := p.Publish(context.Background(), messages(5))
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued != 5 || len(res.Failed) != 0 || res.Batches != 3 {
		t.Fatalf("result %+v", res)
	}
	if got := []int{len(f.calls[0].Entries), len(f.calls[1].Entries), len(f.calls[2].Entries)}; fmt.Sprint(got) != "[5 2 1]" {
		t.Errorf("re-sent entries %v, want [5 2 1]", got)
	}
	if len(f.accepted) != 5 {
		t.Errorf("%d messages accepted, want 5 (no duplicates)", len(f.accepted))
	}
}

func TestPublishReportsWhatCannotBeSent(t *testing.T) {
	// T000 is the sender's fault (not retried); T002 always fails (retried up
	// to the policy's attempts).
	f := &fakeSQS{fail: func(_ int, e types.SendMessageBatchRequestEntry) (bool, bool) {
		switch {
		case strings.Contains(*e.MessageBody, "T000"):
			return true, true
		case strings.Contains(*e.MessageBody, "T002"):
			return true, false
		}
		return false, false
	}}
	p := NewPublisher(f, "https://sqs/q", PublisherOptions{Retry: noWait})
	res, err := p.Publish(context.Background(), messages(3))
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued != 1 || res.Batches != noWait.Attempts {
		t.Fatalf("result %+v, want 1 queued in %d calls", res, noWait.Attempts)
	}
	want := map[string]bool{"T000": true, "T002": false}
	if len(res.Failed) != 2 {
		t.Fatalf("failed %+v", res.Failed)
	}
	for _, fl := range res.Failed {
		sf, ok := want[fl.Ticker]
		if !ok || fl.SenderFault != sf || fl.Code != "InternalError" {
			t.Errorf("failure %+v", fl)
		}
	}
	for _, c := range f.calls[1:] {
		for _, e := range c.Entries {
			if strings.Contains(*e.MessageBody, "T000") {
				t.Error("a sender-fault entry was re-sent")
			}
		}
	}
}

func TestPublishCallErrorFailsTheRest(t *testing.T) {
	f := &fakeSQS{err: errors.New("AWS.SimpleQueueService.NonExistentQueue")}
	p := NewPublisher(f, "https://sqs/q", PublisherOptions{Retry: noWait})
	res, err := p.Publish(context.Background(), messages(15))
	if err == nil || !strings.Contains(err.Error(), "NonExistentQueue") {
		t.Fatalf("err = %v", err)
	}
	if len(f.calls) != 1 || res.Queued != 0 || len(res.Failed) != 15 {
		t.Fatalf("calls %d, result queued %d failed %d", len(f.calls), res.Queued, len(res.Failed))
	}
}

func TestPublishFIFOIds(t *testing.T) {
	for _, groups := range []int{1, 4} {
		t.Run(fmt.Sprint(groups), func(t *testing.T) {
			f := &fakeSQS{}
			p := NewPublisher(f, "https://sqs/ticker-processing-queue-dev.fifo", PublisherOptions{Groups: groups, Retry: noWait})
			if !p.FIFO() {
				t.Fatal("a .fifo URL is not taken as FIFO")
			}
			if _, err := p.Publish(context.Background(), messages(40)); err != nil {
				t.Fatal(err)
			}
			seenGroups := map[string]bool{}
			seenDedup := map[string]bool{}
			for _, e := range f.accepted {
				m, err := queue.Decode([]byte(*e.MessageBody))
				if err != nil {
					t.Fatal(err)
				}
				g, d := aws.ToString(e.MessageGroupId), aws.ToString(e.MessageDeduplicationId)
				if g != queue.GroupID(m.Ticker, groups) {
					t.Errorf("%s: group %q", m.Ticker, g)
				}
				if groups == 1 && g != "tickers" {
					t.Errorf("one group must be called tickers, got %q", g)
				}
				if groups > 1 && !strings.HasPrefix(g, "tickers-") {
					t.Errorf("group %q", g)
				}
				if b, err := hex.DecodeString(d); err != nil || len(b) != 32 {
					t.Errorf("dedup id %q is not hex SHA-256", d)
				}
				seenGroups[g], seenDedup[d] = true, true
			}
			if groups > 1 && len(seenGroups) < 2 {
				t.Errorf("40 tickers all in one of %d groups: %v", groups, seenGroups)
			}
			if len(seenDedup) != 40 {
				t.Errorf("%d distinct de-duplication ids for 40 tickers", len(seenDedup))
			}
		})
	}
}

func TestFIFOIdsReferenceValues(t *testing.T) {
	// Computed independently: printf 'run-1/AAPL' | sha256sum
	if got, want := queue.DeduplicationID("run-1", "AAPL"), "550120952cd5d961acf34eb4b6e3d35039c29ba647472c0ac15bf4790acd3421"; got != want {
		t.Errorf("DeduplicationID = %s, want %s", got, want)
	}
	// FNV-1a 32 of "AAPL" is 1489842955 (computed with the published
	// offset basis and prime in Python); 1489842955 mod 7 = 6.
	if got, want := queue.GroupID("AAPL", 7), "tickers-6"; got != want {
		t.Errorf("GroupID = %s, want %s", got, want)
	}
}

func TestPublishStopsRetryingAtTheDeadline(t *testing.T) {
	// Every entry fails retryably; the context's deadline is too near for
	// the first backoff, so one call is made and the entries are reported.
	f := &fakeSQS{fail: func(int, types.SendMessageBatchRequestEntry) (bool, bool) { return true, false }}
	policy := retry.Policy{Attempts: 5, Base: time.Minute, Cap: time.Minute, Rand: func() float64 { return 0.99 }}
	p := NewPublisher(f, "https://sqs/q", PublisherOptions{Retry: policy})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := p.Publish(ctx, messages(3))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 1 || res.Queued != 0 || len(res.Failed) != 3 {
		t.Fatalf("calls %d, result %+v", len(f.calls), res)
	}
	for _, fl := range res.Failed {
		if fl.Code != "InternalError" || !strings.Contains(fl.Message, "no time left") {
			t.Errorf("failure %+v", fl)
		}
	}
}

// A night as processTickers queues it: the day message first, in its own
// group, then the tickers; a batch holding a large day message is cut so
// that no SendMessageBatch carries more than 256 KiB.
func TestPublishDayMessageFirstAndWithinTheBatchSizeLimit(t *testing.T) {
	f := &fakeSQS{}
	p := NewPublisher(f, "https://sqs.us-east-1.amazonaws.com/1/q.fifo", PublisherOptions{Groups: 1})
	var held []string
	for i := range queue.MaxDayTickers {
		held = append(held, fmt.Sprintf("T%09d", i)) // the longest spelling
	}
	at := time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC)
	// Two parts of about 195 KB each: never in the same batch.
	msgs := []queue.Message{queue.NewDay("2026-11-25", held, "tickers", 1, 2, "run-9", at), queue.NewDay("2026-11-25", held, "tickers", 2, 2, "run-9", at)}
	for _, tk := range []string{"AAPL", "MSFT"} {
		msgs = append(msgs, queue.NewTicker(tk, "2026-11-25", "run-9", at))
	}
	res, err := p.Publish(context.Background(), msgs)
	if err != nil || res.Queued != 4 || len(res.Failed) != 0 {
		t.Fatalf("publish %+v %v", res, err)
	}
	if len(f.calls) != 2 || len(f.calls[0].Entries) != 1 || len(f.calls[1].Entries) != 3 {
		t.Fatalf("batches %d (%d entries first), want the first part alone, then the second with the two tickers", len(f.calls), len(f.calls[0].Entries))
	}
	for _, c := range f.calls {
		size := 0
		for _, e := range c.Entries {
			size += len(aws.ToString(e.MessageBody))
		}
		if size > 256*1024 {
			t.Errorf("a batch of %d bytes", size)
		}
	}
	day := f.calls[0].Entries[0]
	if aws.ToString(day.MessageGroupId) != "tickers" || aws.ToString(day.MessageDeduplicationId) != msgs[0].DeduplicationID() {
		t.Errorf("day entry group %s dedup %s", aws.ToString(day.MessageGroupId), aws.ToString(day.MessageDeduplicationId))
	}
}

// fakeVisibility records ChangeMessageVisibilityBatch calls.
type fakeVisibility struct {
	calls  []*sqs.ChangeMessageVisibilityBatchInput
	failID string
}

func (f *fakeVisibility) ChangeMessageVisibilityBatch(_ context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	f.calls = append(f.calls, in)
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		if aws.ToString(e.ReceiptHandle) == f.failID {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid"), Message: aws.String("expired"), SenderFault: true})
			continue
		}
		out.Successful = append(out.Successful, types.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func TestVisibilityChangesInBatchesOfTen(t *testing.T) {
	f := &fakeVisibility{failID: "rh-11"}
	v := NewVisibility(f, "https://sqs.us-east-1.amazonaws.com/1/q.fifo")
	var changes []queue.VisibilityChange
	for i := range 12 {
		changes = append(changes, queue.VisibilityChange{ReceiptHandle: fmt.Sprint("rh-", i), Timeout: time.Duration(i) * 30 * time.Second})
	}
	err := v.Change(context.Background(), changes)
	if err == nil || !strings.Contains(err.Error(), "1 of 12 entries failed (ReceiptHandleIsInvalid: expired)") {
		t.Fatalf("err %v", err)
	}
	if len(f.calls) != 2 || len(f.calls[0].Entries) != 10 || len(f.calls[1].Entries) != 2 {
		t.Fatalf("calls %d", len(f.calls))
	}
	if e := f.calls[0].Entries[3]; aws.ToString(e.ReceiptHandle) != "rh-3" || e.VisibilityTimeout != 90 || aws.ToString(f.calls[0].QueueUrl) != "https://sqs.us-east-1.amazonaws.com/1/q.fifo" {
		t.Errorf("entry %+v", e)
	}
	if err := NewVisibility(&fakeVisibility{}, "u").Change(context.Background(), changes[:1]); err != nil {
		t.Errorf("one change: %v", err)
	}
}
