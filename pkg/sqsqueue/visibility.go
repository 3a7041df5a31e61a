package sqsqueue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/zsmseven/backend/pkg/queue"
)

// VisibilityAPI is the SQS call of Visibility: ChangeMessageVisibilityBatch,
// the IAM action sqs:ChangeMessageVisibility on the ticker queue.
type VisibilityAPI interface {
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

var _ VisibilityAPI = (*sqs.Client)(nil)

// Visibility changes the visibility of received messages of one queue.
// processTicker uses it for the records it hands back: without it they keep
// the queue's visibility timeout (18 minutes), during which a FIFO message
// group hands out nothing.
type Visibility struct {
	client VisibilityAPI
	url    string
}

// NewVisibility returns a Visibility over the queue at queueURL.
func NewVisibility(client VisibilityAPI, queueURL string) *Visibility {
	return &Visibility{client: client, url: queueURL}
}

// maxVisibility is SQS's cap on a visibility timeout (12 hours).
const maxVisibility = 12 * time.Hour

// Change applies changes, ten per call. Entries SQS reports as failed (a
// receipt handle that expired, say) are counted in the error; the messages
// then keep their visibility timeout, which delays them but loses nothing.
func (v *Visibility) Change(ctx context.Context, changes []queue.VisibilityChange) error {
	failed, first := 0, ""
	for start := 0; start < len(changes); start += queue.MaxBatch {
		in := &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(v.url)}
		for i, c := range changes[start:min(start+queue.MaxBatch, len(changes))] {
			secs := int32(min(max(c.Timeout, 0), maxVisibility) / time.Second)
			in.Entries = append(in.Entries, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(c.ReceiptHandle), VisibilityTimeout: secs,
			})
		}
		out, err := v.client.ChangeMessageVisibilityBatch(ctx, in)
		if err != nil {
			return fmt.Errorf("change message visibility on %s: %w", v.url, err)
		}
		for _, f := range out.Failed {
			failed++
			if first == "" {
				first = aws.ToString(f.Code) + ": " + aws.ToString(f.Message)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("change message visibility on %s: %d of %d entries failed (%s)", v.url, failed, len(changes), first)
	}
	return nil
}
