// Package sqsqueue sends the ticker queue's messages (package queue) over
// SQS: the publisher (processTickers' night, processTicker's fill), the
// requeuer and dead-letterer of records that failed transiently, the
// visibility of handed-back records, and the batch sender both queues use.
package sqsqueue

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
)

// SQSAPI is the SQS calls of this package: SendMessageBatch for the
// publisher, SendMessage for the requeuer. Both are the IAM action
// sqs:SendMessage.
type SQSAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

var _ SQSAPI = (*sqs.Client)(nil)

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	// Groups is the number of FIFO message groups (deploy.VarTickerMessageGroups);
	// values below 1 mean 1. Ignored for a standard queue.
	Groups int
	// Retry re-sends the entries SQS reports as failed (not the sender's
	// fault). The zero value uses DefaultRetry.
	Retry retry.Policy
}

// DefaultRetry re-sends failed entries up to 4 times in all, with full
// jitter between 100 ms and 2 s.
var DefaultRetry = retry.Policy{Attempts: 4, Base: 100 * time.Millisecond, Cap: 2 * time.Second}

// Publisher sends messages to one queue with SendMessageBatch.
type Publisher struct {
	client SQSAPI
	url    string
	fifo   bool
	groups int
	retry  retry.Policy
}

// NewPublisher returns a publisher for the queue at queueURL. A URL ending in
// ".fifo" is a FIFO queue: every entry then carries a message group id and a
// de-duplication id.
func NewPublisher(client SQSAPI, queueURL string, opts PublisherOptions) *Publisher {
	p := &Publisher{client: client, url: queueURL, fifo: strings.HasSuffix(queueURL, ".fifo"), groups: max(opts.Groups, 1), retry: opts.Retry}
	if p.retry.Attempts == 0 {
		p.retry = DefaultRetry
	}
	return p
}

// FIFO reports whether the queue is a FIFO queue.
func (p *Publisher) FIFO() bool { return p.fifo }

// Groups is the number of FIFO message groups the publisher spreads ticker
// messages over (1 for a standard queue).
func (p *Publisher) Groups() int {
	if !p.fifo {
		return 1
	}
	return p.groups
}

// Publish sends msgs, in order, in batches of at most queue.MaxBatch entries and
// queue.MaxBatchBytes of bodies. Entries that SQS reports as failed through no
// fault of the sender are re-sent with backoff, within the retry policy and
// the context's deadline; the rest are reported in queue.Result.Failed. An error
// means a SendMessageBatch call itself failed (after the SDK's own retries);
// the messages of the batches not sent are then in Failed too.
func (p *Publisher) Publish(ctx context.Context, msgs []queue.Message) (queue.Result, error) {
	var res queue.Result
	for start := 0; start < len(msgs); {
		end, size := start, 0
		for end < len(msgs) && end-start < queue.MaxBatch {
			n, err := encodedLen(msgs[end])
			if err != nil {
				return res, err
			}
			if end > start && size+n > queue.MaxBatchBytes {
				break
			}
			size += n
			end++
		}
		batch := msgs[start:end]
		if err := p.sendBatch(ctx, batch, &res); err != nil {
			for _, m := range msgs[end:] {
				res.Failed = append(res.Failed, queue.Failure{Ticker: m.Label(), Code: "Unsent", Message: "batch not sent"})
			}
			return res, err
		}
		start = end
	}
	return res, nil
}

func encodedLen(m queue.Message) (int, error) {
	b, err := m.Encode()
	return len(b), err
}

// sendBatch sends one batch, re-sending retryable failures (SendBatch).
func (p *Publisher) sendBatch(ctx context.Context, batch []queue.Message, res *queue.Result) error {
	entries := make([]types.SendMessageBatchRequestEntry, 0, len(batch))
	for i, m := range batch {
		e, err := p.entry(strconv.Itoa(i), m)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	br, err := SendBatch(ctx, p.client, p.url, entries, p.retry)
	res.Batches += br.Calls
	res.Queued += br.Accepted
	for _, f := range br.Failed {
		res.Failed = append(res.Failed, queue.Failure{Ticker: batch[f.Index].Label(), Code: f.Code, Message: f.Message, SenderFault: f.SenderFault})
	}
	return err
}

func (p *Publisher) entry(id string, m queue.Message) (types.SendMessageBatchRequestEntry, error) {
	body, err := m.Encode()
	if err != nil {
		return types.SendMessageBatchRequestEntry{}, err
	}
	e := types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(body)}
	if p.fifo {
		e.MessageGroupId = aws.String(m.GroupOf(p.groups))
		e.MessageDeduplicationId = aws.String(m.DeduplicationID())
	}
	return e, nil
}
