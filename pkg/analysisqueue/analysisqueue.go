// Package analysisqueue is the analysis queue between analyzePortfolio's
// fan-out and analyzePortfolio's queue consumer (the same function): the
// versioned message schema, one message per portfolio and run, and the SQS
// sender that sends them in batches.
package analysisqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/sqsqueue"
)

// Version is the schema version this code writes and accepts.
const Version = 1

// MaxMessageBytes bounds a body accepted by Decode: a v1 message is at most
// a few hundred bytes.
const MaxMessageBytes = 4096

// maxRunIDLen bounds the run id (a Lambda request id or 32 hex digits).
const maxRunIDLen = 128

// ErrPoison is wrapped by every Decode error: the message can never be
// processed, so the consumer logs, counts and acknowledges it.
var ErrPoison = errors.New("poison message")

// Message asks for the analysis of one portfolio. JSON:
// {"v":1,"portfolio":"ZSM Seven","runId":"…","enqueuedAt":"2026-11-28T06:00:00Z"},
// plus "force":true when the run was forced (omitted when false).
type Message struct {
	V int `json:"v"`
	// Portfolio is the name exactly as the shared table spells it.
	Portfolio string `json:"portfolio"`
	// Force analyzes again even when an analysis of the same data is
	// stored.
	Force bool `json:"force,omitempty"`
	// RunID identifies the fan-out that sent the message (a forced
	// reservation is keyed by it, so a redelivery pays once).
	RunID      string    `json:"runId"`
	EnqueuedAt time.Time `json:"enqueuedAt"`
}

// New returns a v1 message.
func New(portfolio, runID string, force bool, enqueuedAt time.Time) Message {
	return Message{V: Version, Portfolio: portfolio, Force: force, RunID: runID, EnqueuedAt: enqueuedAt.UTC()}
}

// Encode returns the JSON body of m.
func (m Message) Encode() (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode analysis message for %q: %w", m.Portfolio, err)
	}
	return string(b), nil
}

// Decode parses and validates a body. Anything that is not exactly a v1
// message — unknown fields, trailing data, a portfolio name the analysis
// would refuse or "*" (a message asks for one portfolio; the consumer never
// fans out), a missing run id or time — is an error wrapping ErrPoison.
func Decode(data []byte) (Message, error) {
	if len(data) > MaxMessageBytes {
		return Message{}, fmt.Errorf("%w: %d bytes, more than %d", ErrPoison, len(data), MaxMessageBytes)
	}
	var raw struct {
		V          *int    `json:"v"`
		Portfolio  *string `json:"portfolio"`
		Force      *bool   `json:"force"`
		RunID      *string `json:"runId"`
		EnqueuedAt *string `json:"enqueuedAt"`
	}
	if err := queue.DecodeObject(data, &raw); errors.Is(err, queue.ErrTrailingData) {
		return Message{}, fmt.Errorf("%w: data after the message object", ErrPoison)
	} else if err != nil {
		return Message{}, fmt.Errorf("%w: not an analysis message object: %s", ErrPoison, err)
	}
	switch {
	case raw.V == nil:
		return Message{}, fmt.Errorf("%w: no schema version \"v\"", ErrPoison)
	case *raw.V != Version:
		return Message{}, fmt.Errorf("%w: schema version %d, want %d", ErrPoison, *raw.V, Version)
	case raw.Portfolio == nil:
		return Message{}, fmt.Errorf("%w: no \"portfolio\"", ErrPoison)
	case *raw.Portfolio == "*":
		return Message{}, fmt.Errorf("%w: \"portfolio\" is \"*\": a message names one portfolio", ErrPoison)
	case raw.RunID == nil || *raw.RunID == "":
		return Message{}, fmt.Errorf("%w: no \"runId\"", ErrPoison)
	case len(*raw.RunID) > maxRunIDLen:
		return Message{}, fmt.Errorf("%w: \"runId\" longer than %d bytes", ErrPoison, maxRunIDLen)
	case raw.EnqueuedAt == nil:
		return Message{}, fmt.Errorf("%w: no \"enqueuedAt\"", ErrPoison)
	}
	if _, err := analysis.ValidatePortfolioName(*raw.Portfolio); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrPoison, err)
	}
	at, err := time.Parse(time.RFC3339Nano, *raw.EnqueuedAt)
	if err != nil {
		return Message{}, fmt.Errorf("%w: \"enqueuedAt\" %.40q is not an RFC 3339 time", ErrPoison, *raw.EnqueuedAt)
	}
	m := Message{V: Version, Portfolio: *raw.Portfolio, RunID: *raw.RunID, EnqueuedAt: at.UTC()}
	if raw.Force != nil {
		m.Force = *raw.Force
	}
	return m, nil
}

// MaxBatch is the most entries SQS accepts in one SendMessageBatch call.
const MaxBatch = 10

// SQSAPI is the SQS call of the sender: the IAM action sqs:SendMessage.
type SQSAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

var _ SQSAPI = (*sqs.Client)(nil)

// DefaultRetry re-sends entries SQS failed through no fault of the sender
// up to 4 times in all, with full jitter between 100 ms and 2 s.
var DefaultRetry = retry.Policy{Attempts: 4, Base: 100 * time.Millisecond, Cap: 2 * time.Second}

// Sender sends messages to the analysis queue (a standard queue).
type Sender struct {
	client SQSAPI
	url    string
	// Retry re-sends retryable failures; DefaultRetry if zero.
	Retry retry.Policy
}

// NewSender returns a sender to the queue at queueURL.
func NewSender(client SQSAPI, queueURL string) *Sender {
	return &Sender{client: client, url: queueURL, Retry: DefaultRetry}
}

// Failure is a message SQS did not accept.
type Failure struct {
	Portfolio     string
	Code, Message string
}

// Send sends msgs in order, in batches of MaxBatch, re-sending the entries
// SQS reports as failed through no fault of the sender within the retry
// policy and the context's deadline. It returns how many were accepted and
// the ones that were not; an error means a SendMessageBatch call itself
// failed (the messages of the batches not sent are in the failures too).
func (s *Sender) Send(ctx context.Context, msgs []Message) (int, []Failure, error) {
	sent := 0
	var failed []Failure
	for start := 0; start < len(msgs); start += MaxBatch {
		batch := msgs[start:min(start+MaxBatch, len(msgs))]
		n, f, err := s.sendBatch(ctx, batch)
		sent += n
		failed = append(failed, f...)
		if err != nil {
			for _, m := range msgs[start+len(batch):] {
				failed = append(failed, Failure{Portfolio: m.Portfolio, Code: "Unsent", Message: "batch not sent"})
			}
			return sent, failed, err
		}
	}
	return sent, failed, nil
}

func (s *Sender) sendBatch(ctx context.Context, batch []Message) (int, []Failure, error) {
	entries := make([]types.SendMessageBatchRequestEntry, len(batch))
	for i, m := range batch {
		body, err := m.Encode()
		if err != nil {
			return 0, nil, err
		}
		// A standard queue: no group, no de-duplication id.
		entries[i] = types.SendMessageBatchRequestEntry{MessageBody: aws.String(body)}
	}
	policy := s.Retry
	if policy.Attempts == 0 {
		policy = DefaultRetry
	}
	br, err := sqsqueue.SendBatch(ctx, s.client, s.url, entries, policy)
	failed := make([]Failure, 0, len(br.Failed))
	for _, f := range br.Failed {
		failed = append(failed, Failure{Portfolio: batch[f.Index].Portfolio, Code: f.Code, Message: f.Message})
	}
	return br.Accepted, failed, err
}
