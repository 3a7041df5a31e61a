package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/deploy"
)

// The analysis queue (docs/decisions/0003-analysis-fan-out.md): a standard
// queue of one message per portfolio, sent by analyzePortfolio's fan-out and
// consumed by analyzePortfolio itself, one message per invocation, at most
// Config.AnalysisConcurrency at once. A received message is hidden for
// deploy.AnalysisVisibilityFactor × the function's timeout (AWS's guidance:
// a message handed back is retried after it), and moves to the DLQ after
// deploy.AnalysisMaxReceiveCount receives.
const (
	analysisBatchSize = 1
)

// analysisQueue is the analysis queue and its dead-letter queue.
type analysisQueue struct {
	queue awssqs.Queue
	dlq   awssqs.Queue
}

func newAnalysisQueue(scope constructs.Construct, stage string) *analysisQueue {
	// Redrive allowed from the analysis queue only.
	dlq := newDeadLetterQueue(scope, "AnalysisDLQ", deploy.AnalysisDLQName(stage), deploy.AnalysisQueueName(stage))
	q := awssqs.NewQueue(scope, jsii.String("AnalysisQueue"), &awssqs.QueueProps{
		QueueName:         jsii.String(deploy.AnalysisQueueName(stage)),
		RetentionPeriod:   awscdk.Duration_Days(jsii.Number(retentionDays)),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(deploy.AnalysisVisibilityFactor * deploy.AnalyzePortfolio.Timeout.Seconds())),
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           dlq,
			MaxReceiveCount: jsii.Number(deploy.AnalysisMaxReceiveCount),
		},
	})
	return &analysisQueue{queue: q, dlq: dlq}
}

// attach makes fn the queue's consumer — batches of one, partial batch
// responses, at most concurrency invocations at once (the event source
// grants the consume actions) — and its fan-out's sender: sqs:SendMessage on
// this queue only.
func (a *analysisQueue) attach(fn *function, concurrency int) {
	allow(fn.Role, []string{"sqs:SendMessage"}, *a.queue.QueueArn())
	fn.Fn.AddEventSource(awslambdaeventsources.NewSqsEventSource(a.queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(analysisBatchSize),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(concurrency),
	}))
}
