package sqsqueue

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/zsmseven/backend/pkg/queue"
)

const (
	fifoQueue = "https://sqs.us-east-1.amazonaws.com/123/ticker-processing-queue-dev.fifo"
	fifoDLQ   = "https://sqs.us-east-1.amazonaws.com/123/ticker-processing-dlq-dev.fifo"
)

func attemptMessage(attempt int) queue.Message {
	m := queue.New("AAPL", "run-1", time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC))
	m.Attempt = attempt
	return m
}

func TestRequeueSendsTheCopyToTheQueueTail(t *testing.T) {
	f := &fakeSQS{}
	r := NewRequeuer(f, fifoQueue, fifoDLQ)
	if err := r.Requeue(context.Background(), attemptMessage(3), "tickers-2"); err != nil {
		t.Fatal(err)
	}
	if len(f.sends) != 1 || len(f.calls) != 0 {
		t.Fatalf("%d SendMessage and %d SendMessageBatch calls, want 1 and 0", len(f.sends), len(f.calls))
	}
	in := f.sends[0]
	if got := aws.ToString(in.QueueUrl); got != fifoQueue {
		t.Errorf("queue %s, want the ticker queue", got)
	}
	if got, want := aws.ToString(in.MessageBody), `{"v":1,"ticker":"AAPL","runId":"run-1","enqueuedAt":"2026-11-27T02:30:00Z","attempt":3}`; got != want {
		t.Errorf("body %s\nwant %s", got, want)
	}
	if got := aws.ToString(in.MessageGroupId); got != "tickers-2" {
		t.Errorf("group %q, want the original's tickers-2", got)
	}
	// printf 'run-1/AAPL/3' | sha256sum
	if got, want := aws.ToString(in.MessageDeduplicationId), "138676cac46dbfde7c06f14e6380379da9b29fb41a704269467ca9b900233f2f"; got != want {
		t.Errorf("dedup id %s, want %s", got, want)
	}
	if in.DelaySeconds != 0 {
		t.Errorf("delay %d: a FIFO queue takes no per-message delay", in.DelaySeconds)
	}
}

func TestDeduplicationIDOfAMessage(t *testing.T) {
	// Attempt 0 is processTickers' id (printf 'run-1/AAPL' | sha256sum).
	if got, want := attemptMessage(0).DeduplicationID(), "550120952cd5d961acf34eb4b6e3d35039c29ba647472c0ac15bf4790acd3421"; got != want {
		t.Errorf("attempt 0: %s, want %s", got, want)
	}
	seen := map[string]bool{}
	for a := range 6 {
		seen[attemptMessage(a).DeduplicationID()] = true
	}
	if len(seen) != 6 {
		t.Errorf("%d distinct ids for 6 attempts", len(seen))
	}
}

func TestDeadLetterSendsTheSameBodyToTheDLQ(t *testing.T) {
	f := &fakeSQS{}
	r := NewRequeuer(f, fifoQueue, fifoDLQ)
	clock := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return clock }
	m := attemptMessage(4)
	for range 2 {
		if err := r.DeadLetter(context.Background(), m, "tickers"); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Minute)
	}
	if len(f.sends) != 2 {
		t.Fatalf("%d sends", len(f.sends))
	}
	want, _ := m.Encode()
	for _, in := range f.sends {
		if aws.ToString(in.QueueUrl) != fifoDLQ || aws.ToString(in.MessageBody) != want || aws.ToString(in.MessageGroupId) != "tickers" {
			t.Errorf("sent %s %s group %s, want the DLQ, %s, group tickers", aws.ToString(in.QueueUrl), aws.ToString(in.MessageBody), aws.ToString(in.MessageGroupId), want)
		}
		if b, err := hex.DecodeString(aws.ToString(in.MessageDeduplicationId)); err != nil || len(b) != 32 {
			t.Errorf("dedup id %q is not hex SHA-256", aws.ToString(in.MessageDeduplicationId))
		}
	}
	// A message redriven and dead-lettered again must not be dropped as a
	// duplicate of its first visit.
	if aws.ToString(f.sends[0].MessageDeduplicationId) == aws.ToString(f.sends[1].MessageDeduplicationId) {
		t.Error("two dead-letterings of the same message share a de-duplication id")
	}
}

func TestRequeuerErrors(t *testing.T) {
	f := &fakeSQS{err: errors.New("AccessDenied: not authorized to perform sqs:SendMessage")}
	r := NewRequeuer(f, fifoQueue, fifoDLQ)
	err := r.Requeue(context.Background(), attemptMessage(1), "tickers")
	if err == nil || !strings.Contains(err.Error(), "re-queue AAPL (attempt 1)") || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("error %v", err)
	}
	if err := r.DeadLetter(context.Background(), attemptMessage(4), "tickers"); err == nil || !strings.Contains(err.Error(), "dead-letter AAPL") {
		t.Errorf("error %v", err)
	}
	// FIFO needs a group: refused before any call.
	f = &fakeSQS{}
	r = NewRequeuer(f, fifoQueue, fifoDLQ)
	if err := r.Requeue(context.Background(), attemptMessage(1), ""); err == nil || len(f.sends) != 0 {
		t.Errorf("no group id: error %v after %d sends", err, len(f.sends))
	}
}

func TestRequeueToAStandardQueue(t *testing.T) {
	f := &fakeSQS{}
	r := NewRequeuer(f, "https://sqs.us-east-1.amazonaws.com/123/q", "https://sqs.us-east-1.amazonaws.com/123/dlq")
	if err := r.Requeue(context.Background(), attemptMessage(1), ""); err != nil {
		t.Fatal(err)
	}
	if in := f.sends[0]; in.MessageGroupId != nil || in.MessageDeduplicationId != nil {
		t.Errorf("standard queue got FIFO ids: %+v", in)
	}
}
