package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/zsmseven/backend/pkg/retry"
)

// MaxBatch is the most entries SQS accepts in one SendMessageBatch call.
const MaxBatch = 10

// MaxBatchBytes is the most SQS accepts in one SendMessageBatch call, all
// bodies together (256 KiB): a batch holding a day message is cut short.
const MaxBatchBytes = 256 * 1024

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

// Failure is a message SQS did not accept.
type Failure struct {
	// Ticker is the message's ticker, or its Label for a day message.
	Ticker string
	// Code and Message are SQS's, or "Unsent" when attempts or time ran out.
	Code, Message string
	// SenderFault is SQS's verdict that the entry itself is wrong (not retried).
	SenderFault bool
}

// Result counts the outcome of Publish.
type Result struct {
	// Queued is the number of messages SQS accepted.
	Queued int
	// Batches is the number of SendMessageBatch calls made, re-sends included.
	Batches int
	// Failed lists the messages not queued.
	Failed []Failure
}

// GroupID is the FIFO message group of a ticker: "tickers" with one group,
// else "tickers-<i>" with i the FNV-1a hash of the ticker modulo groups.
func GroupID(ticker string, groups int) string {
	if groups <= 1 {
		return "tickers"
	}
	h := fnv.New32a()
	h.Write([]byte(ticker))
	return "tickers-" + strconv.Itoa(int(h.Sum32()%uint32(groups)))
}

// DeduplicationID is the FIFO de-duplication id of a message: the hex SHA-256
// of runId + "/" + ticker, so a retried run with the same id does not queue a
// ticker twice within SQS's five-minute window.
func DeduplicationID(runID, ticker string) string {
	return sha256Hex(runID + "/" + ticker)
}

// DeduplicationID is the FIFO de-duplication id of m: DeduplicationID(RunID,
// Ticker) as processTickers sends a ticker message (Attempt 0), else the hex
// SHA-256 of runId + "/" + ticker + "/" + attempt, so that each re-queued
// copy is new to SQS while a repeated send of the same copy is not. A day
// message's is the SHA-256 of runId + "/#day/" + its part key (and
// "/" + attempt).
func (m Message) DeduplicationID() string {
	name := m.Ticker
	if m.IsDay() {
		name = "#day/" + m.PartKey()
	}
	if m.Attempt == 0 {
		return DeduplicationID(m.RunID, name)
	}
	return sha256Hex(m.RunID + "/" + name + "/" + strconv.Itoa(m.Attempt))
}

// GroupOf is the FIFO message group of m: a day message's own, else
// GroupID(m.Ticker, groups).
func (m Message) GroupOf(groups int) string {
	if m.IsDay() {
		return m.Group
	}
	return GroupID(m.Ticker, groups)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Publish sends msgs, in order, in batches of at most MaxBatch entries and
// MaxBatchBytes of bodies. Entries that SQS reports as failed through no
// fault of the sender are re-sent with backoff, within the retry policy and
// the context's deadline; the rest are reported in Result.Failed. An error
// means a SendMessageBatch call itself failed (after the SDK's own retries);
// the messages of the batches not sent are then in Failed too.
func (p *Publisher) Publish(ctx context.Context, msgs []Message) (Result, error) {
	var res Result
	for start := 0; start < len(msgs); {
		end, size := start, 0
		for end < len(msgs) && end-start < MaxBatch {
			n, err := encodedLen(msgs[end])
			if err != nil {
				return res, err
			}
			if end > start && size+n > MaxBatchBytes {
				break
			}
			size += n
			end++
		}
		batch := msgs[start:end]
		if err := p.sendBatch(ctx, batch, &res); err != nil {
			for _, m := range msgs[end:] {
				res.Failed = append(res.Failed, Failure{Ticker: m.Label(), Code: "Unsent", Message: "batch not sent"})
			}
			return res, err
		}
		start = end
	}
	return res, nil
}

func encodedLen(m Message) (int, error) {
	b, err := m.Encode()
	return len(b), err
}

// sendBatch sends one batch, re-sending retryable failures (SendBatch).
func (p *Publisher) sendBatch(ctx context.Context, batch []Message, res *Result) error {
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
		res.Failed = append(res.Failed, Failure{Ticker: batch[f.Index].Label(), Code: f.Code, Message: f.Message, SenderFault: f.SenderFault})
	}
	return err
}

func (p *Publisher) entry(id string, m Message) (types.SendMessageBatchRequestEntry, error) {
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
