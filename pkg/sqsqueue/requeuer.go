package sqsqueue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/zsmseven/backend/pkg/queue"
)

// Requeuer sends single messages with SendMessage: a message processTicker
// re-queues to the tail of the ticker queue, or one it dead-letters itself
// after its last attempt (pipeline.Requeuer).
type Requeuer struct {
	client     SQSAPI
	queueURL   string
	deadLetter string
	now        func() time.Time
}

// NewRequeuer returns a requeuer for the ticker queue at queueURL and its
// dead-letter queue at dlqURL. A URL ending in ".fifo" is a FIFO queue:
// messages sent to it carry the given group id and a de-duplication id.
func NewRequeuer(client SQSAPI, queueURL, dlqURL string) *Requeuer {
	return &Requeuer{client: client, queueURL: queueURL, deadLetter: dlqURL, now: time.Now}
}

// Requeue sends m, as it is (the caller has raised its Attempt), to the tail
// of the ticker queue in message group groupID. Its de-duplication id is
// m.DeduplicationID(): sending the same copy again (a batch redelivered after
// the send) within SQS's five-minute window queues it once.
func (r *Requeuer) Requeue(ctx context.Context, m queue.Message, groupID string) error {
	if err := r.send(ctx, r.queueURL, m, groupID, m.DeduplicationID()); err != nil {
		return fmt.Errorf("re-queue %s (attempt %d): %w", m.Label(), m.Attempt, err)
	}
	return nil
}

// DeadLetter sends m, as it is, to the dead-letter queue in message group
// groupID. The de-duplication id includes the time of sending: a message
// redriven from the dead-letter queue that fails again within five minutes
// must reach it again, not be dropped as a duplicate of its first visit. (A
// batch redelivered after the send can then leave two copies there; a
// redrive of both writes the same row twice, which is idempotent.)
func (r *Requeuer) DeadLetter(ctx context.Context, m queue.Message, groupID string) error {
	dedup := queue.DeduplicationID(m.DeduplicationID()+"/dead-letter", r.now().UTC().Format(time.RFC3339Nano))
	if err := r.send(ctx, r.deadLetter, m, groupID, dedup); err != nil {
		return fmt.Errorf("dead-letter %s (attempt %d): %w", m.Label(), m.Attempt, err)
	}
	return nil
}

func (r *Requeuer) send(ctx context.Context, url string, m queue.Message, groupID, dedup string) error {
	body, err := m.Encode()
	if err != nil {
		return err
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)}
	if strings.HasSuffix(url, ".fifo") {
		if groupID == "" {
			return errors.New("no message group id for a FIFO queue")
		}
		in.MessageGroupId, in.MessageDeduplicationId = aws.String(groupID), aws.String(dedup)
	}
	// The SDK retries throttling and server errors itself; what is left is
	// for the caller to fall back on.
	if _, err := r.client.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("send message to %s: %w", url, err)
	}
	return nil
}
