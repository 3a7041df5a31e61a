package main

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/deploy"
)

// Queue sizing, decided together (docs/decisions/0001-queue-concurrency.md):
// a batch of tickerBatchSize tickers paced at 12 s per Polygon call (5 calls
// per minute) needs about 120 s, so the consumer gets a timeout of 180 s
// (deploy.ProcessTicker.Timeout),
// and SQS hides a received batch for visibilityTimeoutFactor times that, as
// AWS recommends for Lambda event sources.
const (
	tickerBatchSize         = 10
	visibilityTimeoutFactor = 6
	maxReceiveCount         = 5
	// tickerEventSourceMaxConcurrency is the minimum Lambda allows; with one
	// FIFO message group only one batch is in flight anyway.
	tickerEventSourceMaxConcurrency = 2
	retentionDays                   = 14
)

// tickerQueue is the FIFO queue feeding processTicker and its dead-letter queue.
type tickerQueue struct {
	queue awssqs.Queue
	dlq   awssqs.Queue
}

func tickerQueueName(stage string) string { return deploy.TickerQueueName(stage) }
func tickerDLQName(stage string) string   { return deploy.TickerDLQName(stage) }

func newTickerQueue(scope constructs.Construct, stage string) *tickerQueue {
	dlq := newDeadLetterQueue(scope, "TickerDLQ", tickerDLQName(stage), tickerQueueName(stage))
	q := awssqs.NewQueue(scope, jsii.String("TickerQueue"), &awssqs.QueueProps{
		QueueName:                 jsii.String(tickerQueueName(stage)),
		Fifo:                      jsii.Bool(true),
		ContentBasedDeduplication: jsii.Bool(false),
		RetentionPeriod:           awscdk.Duration_Days(jsii.Number(retentionDays)),
		VisibilityTimeout:         awscdk.Duration_Seconds(jsii.Number(visibilityTimeoutFactor * deploy.ProcessTicker.Timeout.Seconds())),
		Encryption:                awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:                jsii.Bool(true),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           dlq,
			MaxReceiveCount: jsii.Number(maxReceiveCount),
		},
	})
	return &tickerQueue{queue: q, dlq: dlq}
}

// newDeadLetterQueue creates the dead-letter queue of the queue named source
// (created by the caller with this queue in its RedrivePolicy). Its
// RedriveAllowPolicy admits that queue alone (byQueue), so no other queue can
// start dead-lettering into it unnoticed. The source is named by an ARN built
// from its name: a reference to the source queue would be a cycle (the source
// refers to this queue). A ".fifo" source gets a FIFO dead-letter queue, as SQS
// requires. 14 days of retention, SQS-managed encryption, TLS only.
func newDeadLetterQueue(scope constructs.Construct, id, name, source string) awssqs.Queue {
	fifo := strings.HasSuffix(source, ".fifo")
	sourceArn := awscdk.Stack_Of(scope).FormatArn(&awscdk.ArnComponents{
		Service:   jsii.String("sqs"),
		Resource:  jsii.String(source),
		ArnFormat: awscdk.ArnFormat_NO_RESOURCE_NAME,
	})
	props := &awssqs.QueueProps{
		QueueName:       jsii.String(name),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(retentionDays)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RedriveAllowPolicy: &awssqs.RedriveAllowPolicy{
			RedrivePermission: awssqs.RedrivePermission_BY_QUEUE,
			SourceQueues: &[]awssqs.IQueue{awssqs.Queue_FromQueueAttributes(scope, jsii.String(id+"Source"), &awssqs.QueueAttributes{
				QueueArn: sourceArn, QueueName: jsii.String(source), Fifo: jsii.Bool(fifo),
			})},
		},
	}
	if fifo {
		props.Fifo = jsii.Bool(true)
		// Senders give an explicit deduplication id (processTickers per run
		// and ticker); redriven messages keep theirs.
		props.ContentBasedDeduplication = jsii.Bool(false)
	}
	return awssqs.NewQueue(scope, jsii.String(id), props)
}

// failureQueues collect what the schedules and the asynchronous invocations of
// the scheduled functions could not deliver, so a failed nightly run is
// visible (alarmed) and can be replayed by hand.
type failureQueues struct {
	// schedules is the dead-letter queue of both EventBridge Scheduler targets.
	schedules awssqs.Queue
	// asyncInvocations is the on-failure destination of processTickers and
	// analyzePortfolio.
	asyncInvocations awssqs.Queue
}

func newFailureQueues(scope constructs.Construct, stage string) *failureQueues {
	mk := func(id, name string) awssqs.Queue {
		q := awssqs.NewQueue(scope, jsii.String(id), &awssqs.QueueProps{
			QueueName:       jsii.String(name),
			RetentionPeriod: awscdk.Duration_Days(jsii.Number(retentionDays)),
			Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
			EnforceSSL:      jsii.Bool(true),
			// They receive from the Scheduler and from Lambda, never through
			// an SQS redrive: no queue may name them as its dead-letter queue.
			RedriveAllowPolicy: &awssqs.RedriveAllowPolicy{RedrivePermission: awssqs.RedrivePermission_DENY_ALL},
		})
		suppress(q, "AwsSolutions-SQS3",
			"This queue is itself a dead-letter queue (of the Scheduler targets or of Lambda asynchronous invocations); cdk-nag only recognises DLQs referenced by another queue's RedrivePolicy. A message arriving in it is alarmed (DLQ grew).")
		return q
	}
	return &failureQueues{
		schedules:        mk("ScheduleDLQ", "zsm-schedule-dlq-"+stage),
		asyncInvocations: mk("AsyncFailureQueue", "zsm-async-failures-"+stage),
	}
}
