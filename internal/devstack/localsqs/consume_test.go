package localsqs_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/internal/devstack/localsqs"
)

// The deployed analysis queue's settings: a 30-minute visibility timeout,
// five receives before the dead-letter queue.
const (
	deployedVisibility = 30 * time.Minute
	deployedReceives   = 5
	workQueue          = "portfolio-analysis-queue-test"
)

// night is a clock that only moves when a test moves it.
func night() *fakeclock.Clock { return fakeclock.New(time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)) }

// sendBodies sends each body to the standard queue name through the SDK.
func sendBodies(t *testing.T, s *localsqs.Server, name string, bodies ...string) {
	t.Helper()
	c := sdkClient(s)
	for _, b := range bodies {
		if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(s.QueueURL(name)), MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
}

// receives records each delivery of a body with its ApproximateReceiveCount.
type receives struct {
	mu  sync.Mutex
	got map[string][]int
}

func (r *receives) add(rec events.SQSMessage) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]int{}
	}
	n, _ := strconv.Atoi(rec.Attributes["ApproximateReceiveCount"])
	r.got[rec.Body] = append(r.got[rec.Body], n)
	return len(r.got[rec.Body])
}

func (r *receives) of(body string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[body])
}

func fail(ids ...string) events.SQSEventResponse {
	var resp events.SQSEventResponse
	for _, id := range ids {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	return resp
}

// Every way a batch is handed back — a handler error, a batchItemFailures
// entry, an invocation cut by its deadline, a failure after the handler set
// a visibility — makes its record visible again at once with
// RedeliverAtOnce, on a clock that never moves past the deployed 30-minute
// visibility timeout; as deployed, the record waits it out and the
// consumption ends with it waiting, never hangs.
func TestHandBackPaths(t *testing.T) {
	paths := []struct {
		name string
		// first answers the record's first receive.
		first    func(ctx context.Context, s *localsqs.Server, rec events.SQSMessage) (events.SQSEventResponse, error)
		timeout  time.Duration
		timedOut int
	}{
		{name: "handler error", first: func(context.Context, *localsqs.Server, events.SQSMessage) (events.SQSEventResponse, error) {
			return events.SQSEventResponse{}, errors.New("store unavailable")
		}},
		{name: "batchItemFailures entry", first: func(_ context.Context, _ *localsqs.Server, rec events.SQSMessage) (events.SQSEventResponse, error) {
			return fail(rec.MessageId), nil
		}},
		{name: "deadline", timeout: 50 * time.Millisecond, timedOut: 1,
			first: func(ctx context.Context, _ *localsqs.Server, _ events.SQSMessage) (events.SQSEventResponse, error) {
				<-ctx.Done()
				// An answer after the deadline is Lambda's "Task timed
				// out": ignored, though it claims success.
				return events.SQSEventResponse{}, nil
			}},
		{name: "failure after a visibility change", first: func(_ context.Context, s *localsqs.Server, rec events.SQSMessage) (events.SQSEventResponse, error) {
			// The handler asks for a retry in ten minutes, as processTicker
			// does for a day message; the local run shortens that too.
			if _, err := sdkClient(s).ChangeMessageVisibility(context.Background(), &sqs.ChangeMessageVisibilityInput{
				QueueUrl: aws.String(s.QueueURL(workQueue)), ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: 600}); err != nil {
				return events.SQSEventResponse{}, err
			}
			return fail(rec.MessageId), nil
		}},
	}
	for _, p := range paths {
		for _, atOnce := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/redeliverAtOnce=%v", p.name, atOnce), func(t *testing.T) {
				clock := night()
				s := start(t, localsqs.Options{Clock: clock, RedeliverAtOnce: atOnce})
				s.CreateQueueWith(workQueue, localsqs.QueueOptions{VisibilityTimeout: deployedVisibility, MaxReceiveCount: deployedReceives})
				sendBodies(t, s, workQueue, "Doomed", "P00", "P01")
				var seen receives
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				tot, err := s.Consume(ctx, workQueue, localsqs.ConsumeOptions{BatchSize: 1, Workers: 3, Timeout: p.timeout},
					func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
						rec := ev.Records[0]
						if seen.add(rec) == 1 && rec.Body == "Doomed" {
							return p.first(ctx, s, rec)
						}
						return events.SQSEventResponse{}, nil
					})
				if err != nil {
					t.Fatal(err)
				}
				if got := seen.of("P00"); !slices.Equal(got, []int{1}) {
					t.Errorf("P00 received %v, want once", got)
				}
				if atOnce {
					if got := seen.of("Doomed"); !slices.Equal(got, []int{1, 2}) {
						t.Errorf("Doomed received with counts %v, want [1 2]: again at once", got)
					}
					want := localsqs.Outcome{Deleted: 3, Requeued: 1}
					if tot.Outcome != want || tot.Batches != 4 || tot.Waiting != 0 || tot.TimedOut != p.timedOut {
						t.Errorf("totals %+v, want %+v in 4 batches, %d timed out, none waiting", tot, want, p.timedOut)
					}
					if c := s.Counts(workQueue); c != (localsqs.Counts{}) {
						t.Errorf("queue %+v, want empty", c)
					}
					return
				}
				// As deployed: Doomed waits out its visibility (the queue's
				// or the one its handler set), and the consumption ends.
				if got := seen.of("Doomed"); !slices.Equal(got, []int{1}) {
					t.Errorf("Doomed received %v before its visibility timeout", got)
				}
				if tot.Waiting != 1 || tot.Requeued != 1 || tot.Deleted != 2 || tot.TimedOut != p.timedOut {
					t.Errorf("totals %+v, want Doomed waiting", tot)
				}
				clock.Advance(deployedVisibility)
				again, err := s.Receive(workQueue, 1)
				if err != nil || len(again.Records) != 1 || again.Records[0].Body != "Doomed" || again.Records[0].Attributes["ApproximateReceiveCount"] != "2" {
					t.Errorf("after the visibility timeout: %+v %v, want Doomed's second receive", again.Records, err)
				}
			})
		}
	}
}

// A message that always fails is received MaxReceiveCount times in a row,
// at once each time, and then moves to the dead-letter list: the
// consumption ends without the clock moving.
func TestRedeliverAtOnceDeadLettersAfterMaxReceiveCount(t *testing.T) {
	s := start(t, localsqs.Options{Clock: night(), RedeliverAtOnce: true})
	s.CreateQueueWith(workQueue, localsqs.QueueOptions{VisibilityTimeout: deployedVisibility, MaxReceiveCount: deployedReceives})
	sendBodies(t, s, workQueue, "Doomed", "P00", "P01", "P02")
	var seen receives
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tot, err := s.DrainConcurrent(ctx, workQueue, 1, 10, func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		seen.add(ev.Records[0])
		if ev.Records[0].Body == "Doomed" {
			return fail(ev.Records[0].MessageId), nil
		}
		return events.SQSEventResponse{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := seen.of("Doomed"); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Errorf("Doomed received with counts %v, want 1..5", got)
	}
	want := localsqs.Outcome{Deleted: 3, Requeued: deployedReceives - 1, DeadLettered: 1}
	if tot.Outcome != want || tot.Batches != 3+deployedReceives || tot.Waiting != 0 {
		t.Errorf("totals %+v, want %+v", tot, want)
	}
	if dead := s.DeadLetters(workQueue); !slices.Equal(dead, []string{"Doomed"}) {
		t.Errorf("dead letters %v", dead)
	}
}

// Workers with nothing to receive while another invocation runs wait for a
// signal: however long that invocation takes, they look at the queue a
// bounded number of times (a poll every millisecond would look hundreds of
// times while the handler below is held).
func TestIdleWorkersDoNotPoll(t *testing.T) {
	s := start(t, localsqs.Options{})
	s.CreateQueue(workQueue)
	sendBodies(t, s, workQueue, "slow")
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	const workers = 10
	go func() {
		_, err := s.DrainConcurrent(context.Background(), workQueue, 1, workers, func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
			close(started)
			<-release
			return events.SQSEventResponse{}, nil
		})
		done <- err
	}()
	<-started
	before := localsqs.Looks(s)
	time.Sleep(200 * time.Millisecond) // a busy loop's chance to show
	idle := localsqs.Looks(s) - before
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Each idle worker looks once when it starts and once per signal; none
	// comes while the handler is held.
	t.Logf("%d idle workers looked %d times in 200 ms while one invocation ran", workers-1, idle)
	if idle > workers {
		t.Errorf("idle workers looked %d times while one invocation ran, want at most %d", idle, workers)
	}
	if total := localsqs.Looks(s); total > 4*workers {
		t.Errorf("%d looks in all for one message and %d workers", total, workers)
	}
}

// A waiting worker wakes when a message is sent: the first invocation can
// only finish after the second message, sent while it runs, is handled by
// another worker.
func TestWaitingWorkerWakesOnSend(t *testing.T) {
	s := start(t, localsqs.Options{})
	s.CreateQueue(workQueue)
	sendBodies(t, s, workQueue, "first")
	secondDone := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tot, err := s.DrainConcurrent(ctx, workQueue, 1, 2, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		if ev.Records[0].Body == "second" {
			close(secondDone)
			return events.SQSEventResponse{}, nil
		}
		sendBodies(t, s, workQueue, "second")
		select {
		case <-secondDone:
			return events.SQSEventResponse{}, nil
		case <-ctx.Done():
			return events.SQSEventResponse{}, ctx.Err()
		}
	})
	if err != nil || tot.Deleted != 2 || tot.Peak != 2 {
		t.Fatalf("totals %+v, err %v: want both handled, two at once", tot, err)
	}
}

// A waiting worker wakes when a visibility changes: a handler that
// releases its record (ChangeMessageVisibility 0) sees it received again by
// another worker while it still runs, as on SQS. Its own success comes with
// a stale receipt handle and deletes nothing; the second receive's does.
func TestWaitingWorkerWakesOnVisibilityChange(t *testing.T) {
	s := start(t, localsqs.Options{VisibilityTimeout: deployedVisibility})
	s.CreateQueue(workQueue)
	sendBodies(t, s, workQueue, "m")
	again := make(chan struct{})
	var seen receives
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tot, err := s.DrainConcurrent(ctx, workQueue, 1, 2, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		rec := ev.Records[0]
		if seen.add(rec) == 2 {
			close(again)
			return events.SQSEventResponse{}, nil
		}
		if _, err := sdkClient(s).ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(s.QueueURL(workQueue)),
			ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: 0}); err != nil {
			return events.SQSEventResponse{}, err
		}
		select {
		case <-again:
			return events.SQSEventResponse{}, nil
		case <-ctx.Done():
			return events.SQSEventResponse{}, ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := seen.of("m"); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("receives %v, want [1 2]", got)
	}
	if tot.Deleted != 1 || tot.Batches != 2 || tot.Waiting != 0 {
		t.Errorf("totals %+v, want one deletion in two batches", tot)
	}
	if c := s.Counts(workQueue); c != (localsqs.Counts{}) {
		t.Errorf("queue %+v, want empty", c)
	}
}

// A waiting worker wakes when a visibility timeout ends on a fake clock: a
// record handed back as deployed comes back when the test moves the clock
// past its timeout, while another invocation still runs — not before.
func TestWaitingWorkerWakesOnVisibilityExpiry(t *testing.T) {
	clock := night()
	s := start(t, localsqs.Options{Clock: clock})
	s.CreateQueueWith(workQueue, localsqs.QueueOptions{VisibilityTimeout: deployedVisibility})
	sendBodies(t, s, workQueue, "slow", "flaky")
	var seen receives
	flakyAgain, extended := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var tot localsqs.Totals
	go func() {
		var err error
		tot, err = s.DrainConcurrent(ctx, workQueue, 1, 2, func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			rec := ev.Records[0]
			n := seen.add(rec)
			switch {
			case rec.Body == "flaky" && n == 1:
				return fail(rec.MessageId), nil
			case rec.Body == "flaky":
				close(flakyAgain)
				return events.SQSEventResponse{}, nil
			}
			// slow runs until flaky is back, its own visibility extended
			// first as a long invocation's would be (else it too would come
			// back when the clock moves).
			if _, err := sdkClient(s).ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(s.QueueURL(workQueue)),
				ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: 43200}); err != nil {
				return events.SQSEventResponse{}, err
			}
			close(extended)
			select {
			case <-flakyAgain:
				return events.SQSEventResponse{}, nil
			case <-ctx.Done():
				return events.SQSEventResponse{}, ctx.Err()
			}
		})
		done <- err
	}()
	// Wait until slow runs and a worker waits on the clock for flaky's
	// timeout.
	<-extended
	for clock.Pending() == 0 || len(seen.of("flaky")) == 0 {
		select {
		case err := <-done:
			t.Fatalf("consumption ended early: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	clock.Advance(deployedVisibility - time.Second)
	if got := seen.of("flaky"); len(got) != 1 {
		t.Fatalf("flaky received %v before its timeout", got)
	}
	clock.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := seen.of("flaky"); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("flaky receives %v, want [1 2]", got)
	}
	if tot.Deleted != 2 || tot.Requeued != 1 || tot.Waiting != 0 {
		t.Errorf("totals %+v", tot)
	}
}

// Closing the server ends a waiting consumer with ErrClosed; the batch
// that runs is still settled.
func TestCloseEndsWaitingConsumers(t *testing.T) {
	s, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.CreateQueue(workQueue)
	sendBodies(t, s, workQueue, "m")
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	var tot localsqs.Totals
	go func() {
		var err error
		tot, err = s.DrainConcurrent(context.Background(), workQueue, 1, 3, func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
			close(started)
			<-release
			return events.SQSEventResponse{}, nil
		})
		done <- err
	}()
	<-started
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; !errors.Is(err, localsqs.ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", err)
	}
	if tot.Deleted != 1 {
		t.Errorf("totals %+v, want the running batch settled", tot)
	}
}

// Halt stops receiving after the batch it is asked about; the rest stays
// on the queue.
func TestConsumeHalt(t *testing.T) {
	s := start(t, localsqs.Options{RedeliverAtOnce: true})
	s.CreateQueue(workQueue)
	sendBodies(t, s, workQueue, "a", "b", "c")
	batches := 0
	tot, err := s.Consume(context.Background(), workQueue, localsqs.ConsumeOptions{BatchSize: 1, Halt: func() bool { return batches == 1 }},
		func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			batches++
			return fail(ev.Records[0].MessageId), nil
		})
	if err != nil || tot.Batches != 1 || tot.Requeued != 1 {
		t.Fatalf("totals %+v, err %v: want one batch", tot, err)
	}
	if c := s.Counts(workQueue); c.Visible != 3 {
		t.Errorf("queue %+v, want all three visible (the failed one at once)", c)
	}
}
