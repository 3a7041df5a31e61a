package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/metrics"
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
	// analysisOldestMessageHours: 1,000 portfolios at the default
	// concurrency take about an hour; a message still waiting after 3 hours
	// means the consumer is not consuming.
	analysisOldestMessageHours = 3
)

// analysisQueue is the analysis queue and its dead-letter queue.
type analysisQueue struct {
	queue awssqs.Queue
	dlq   awssqs.Queue
}

func newAnalysisQueue(scope constructs.Construct, stage string) *analysisQueue {
	// When infra's shared newDeadLetterQueue lands, the DLQ below is
	// newDeadLetterQueue(scope, "AnalysisDLQ", deploy.AnalysisDLQName(stage), deploy.AnalysisQueueName(stage)).
	dlq := awssqs.NewQueue(scope, jsii.String("AnalysisDLQ"), &awssqs.QueueProps{
		QueueName:       jsii.String(deploy.AnalysisDLQName(stage)),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(retentionDays)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
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

// analysisAlarms are the analysis queue's three alarms, each to action:
// its oldest message older than analysisOldestMessageHours (the consumer is
// not consuming), its DLQ grew (a portfolio failed on every receive:
// DIFF(FILL(visible, 0)) > 0, which clears at the next period while the
// messages wait to be redriven, so a new failure alarms again), and
// analyses failed (metrics.AnalysisFailed > 0: a portfolio handed back, a
// poison message, a fan-out message SQS refused). The first two are what
// infra's shared queueAlarms(queue, dlq) gives every queue once it lands.
func analysisAlarms(scope constructs.Construct, stage string, action awscloudwatch.IAlarmAction, a *analysisQueue) {
	five := awscdk.Duration_Minutes(jsii.Number(5))
	gt := awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD
	add := func(id, name, description string, metric awscloudwatch.IMetric, threshold float64) {
		alarm := awscloudwatch.NewAlarm(scope, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String("zsm-" + stage + "-" + name),
			AlarmDescription:   jsii.String(description),
			Metric:             metric,
			Threshold:          jsii.Number(threshold),
			ComparisonOperator: gt,
			EvaluationPeriods:  jsii.Number(1),
			DatapointsToAlarm:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		alarm.AddAlarmAction(action)
	}
	queue, dlq := deploy.AnalysisQueueName(stage), deploy.AnalysisDLQName(stage)
	add("AnalysisQueueOldestMessageAlarm", "analysis-queue-oldest-message",
		"The oldest message on "+queue+" has waited more than 3 hours: analyzePortfolio is not consuming it (event source mapping disabled, "+
			"function failing or throttled). Check the event source mapping and the function's errors and logs.",
		a.queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}),
		analysisOldestMessageHours*3600)
	visible := a.dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")})
	add("AnalysisDLQGrewAlarm", "analysis-dlq-grew",
		"New messages in the dead-letter queue "+dlq+": portfolios whose analysis failed on every one of 5 receives. Read the analyzePortfolio logs "+
			"(analysis failed on its last receive), fix the cause, then redrive (runbook). The alarm clears at the next period; the depth stays on the dashboard.",
		awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression:   jsii.String("DIFF(FILL(visible, 0))"),
			UsingMetrics: &map[string]awscloudwatch.IMetric{"visible": visible},
			Label:        jsii.String("messages added to " + dlq),
			Period:       five,
		}), 0)
	add("AnalysisFailedAlarm", "analysis-failed",
		"Portfolio analyses ended without a result (handed back to the analysis queue for a retry, a poison message, or a fan-out message not queued); "+
			"the analyzePortfolio log line \"analysis failed\" names the portfolio and the error.",
		awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(metrics.Namespace), MetricName: jsii.String(metrics.AnalysisFailed),
			DimensionsMap: &map[string]*string{metrics.DimensionStage: jsii.String(stage)}, Statistic: jsii.String("Sum"), Period: five,
		}), 0)
}
