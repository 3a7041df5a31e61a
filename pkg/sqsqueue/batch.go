package sqsqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/zsmseven/backend/pkg/retry"
)

// BatchSender is the one SQS call SendBatch makes.
type BatchSender interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// EntryFailure is an entry of a batch SQS did not accept: Index is its
// position in the entries given to SendBatch.
type EntryFailure struct {
	Index         int
	Code, Message string
	// SenderFault: SQS refused the entry itself (too large, bad
	// attribute...); it was not re-sent.
	SenderFault bool
}

// BatchResult is what SendBatch did with one batch.
type BatchResult struct {
	// Accepted is the number of entries SQS accepted; Calls the number of
	// SendMessageBatch calls made (re-sends included).
	Accepted, Calls int
	// Failed are the entries not accepted: those SQS refused as the
	// sender's fault as it reported them, then the others in order.
	Failed []EntryFailure
}

// SendBatch sends one batch of at most queue.MaxBatch entries to the queue at url
// with SendMessageBatch, re-sending the entries SQS reports as failed through
// no fault of the sender (or does not mention at all) with backoff, within
// policy and the context's deadline. The entries' ids are set to their
// positions, so that every re-send keeps SQS's report aligned with them.
// An error means a SendMessageBatch call itself failed (after the SDK's own
// retries: no such queue, access denied): every entry not accepted by then
// is reported as "Unsent".
func SendBatch(ctx context.Context, client BatchSender, url string, entries []types.SendMessageBatchRequestEntry, policy retry.Policy) (BatchResult, error) {
	var res BatchResult
	pending := make(map[string]int, len(entries))
	for i := range entries {
		id := strconv.Itoa(i)
		entries[i].Id = aws.String(id)
		pending[id] = i
	}
	last := map[string]types.BatchResultErrorEntry{}
	var callErr error
	_, err := policy.Do(ctx, func(ctx context.Context, _ int) error {
		in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(url)}
		for _, e := range entries {
			if _, ok := pending[*e.Id]; ok {
				in.Entries = append(in.Entries, e)
			}
		}
		res.Calls++
		out, err := client.SendMessageBatch(ctx, in)
		if err != nil {
			// The SDK has already retried the call; a failure here is not
			// fixed by trying again.
			callErr = fmt.Errorf("send message batch to %s: %w", url, err)
			return retry.Permanent(callErr)
		}
		for _, s := range out.Successful {
			if _, ok := pending[aws.ToString(s.Id)]; ok {
				delete(pending, aws.ToString(s.Id))
				res.Accepted++
			}
		}
		retryable := 0
		for _, f := range out.Failed {
			id := aws.ToString(f.Id)
			i, ok := pending[id]
			if !ok {
				continue
			}
			last[id] = f
			if f.SenderFault {
				delete(pending, id)
				res.Failed = append(res.Failed, EntryFailure{Index: i, Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), SenderFault: true})
				continue
			}
			retryable++
		}
		if len(pending) == 0 {
			return nil
		}
		// Entries SQS failed to accept, or did not mention at all.
		return retry.Transient(fmt.Errorf("%d of %d entries not accepted (%d reported failed)", len(pending), len(in.Entries), retryable), 0)
	})
	for i := range entries {
		id := strconv.Itoa(i)
		if _, ok := pending[id]; !ok {
			continue
		}
		f := EntryFailure{Index: i, Code: "Unsent", Message: "not accepted after retries"}
		if e, ok := last[id]; ok {
			f.Code, f.Message = aws.ToString(e.Code), aws.ToString(e.Message)
		}
		if callErr != nil {
			f.Code, f.Message = "Unsent", "batch call failed"
		} else if errors.Is(err, retry.ErrDeadline) || ctx.Err() != nil {
			f.Message += " (no time left)"
		}
		res.Failed = append(res.Failed, f)
	}
	return res, callErr
}
