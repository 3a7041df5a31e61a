package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/metrics"
)

// staleWindowHours is how long the pipeline may stay silent before the
// freshness alarms fire. Both jobs run five times a week; the longest regular
// gap between runs is the weekend (Friday 21:30 -> Monday 21:30 for tickers,
// Saturday 01:00 -> Tuesday 01:00 for analyses), 72 hours, plus two hours for
// the run itself. A market holiday does not open a gap because what is
// counted is work done, not new data: on a holiday night processTicker finds
// the last trading day's rows already stored (TickersCurrent, counted with
// TickersProcessed) and the analysis reuses the stored one (AnalysesAnalyzed
// counts reused analyses). The trade-off: a missed weekday run is
// reported by this backstop only when the window has passed; the Errors and
// dead-letter alarms report most failures within minutes.
const staleWindowHours = 74

// oldestMessageAlarmHours is how old the oldest message of a work queue may
// get. A night's ticker run drains the queue in about 12 s per ticker on the
// free plan (500 tickers: about 100 minutes); a message still there after 3
// hours means the consumer is not consuming (event source disabled, function
// failing before it can report) — which the freshness alarm would report only
// after 74 hours.
const oldestMessageAlarmHours = 3

// monitoring is the alarm topic, the alarms and the dashboard.
type monitoring struct {
	topic     awssns.Topic
	alarms    *alarmSet
	dashboard awscloudwatch.Dashboard
}

// alarmSet creates the stage's alarms, each with the topic as its action, and
// remembers them for the dashboard.
type alarmSet struct {
	scope  constructs.Construct
	stage  string
	action awscloudwatch.IAlarmAction
	all    []awscloudwatch.Alarm
}

// alarmSpec is one alarm. periods defaults to 1, missing to notBreaching.
type alarmSpec struct {
	id, name, description string
	metric                awscloudwatch.IMetric
	threshold             float64
	op                    awscloudwatch.ComparisonOperator
	periods               float64
	missing               awscloudwatch.TreatMissingData
}

var five = awscdk.Duration_Minutes(jsii.Number(5))

func (a *alarmSet) add(s alarmSpec) awscloudwatch.Alarm {
	if s.periods == 0 {
		s.periods = 1
	}
	if s.missing == "" {
		s.missing = awscloudwatch.TreatMissingData_NOT_BREACHING
	}
	alarm := awscloudwatch.NewAlarm(a.scope, jsii.String(s.id), &awscloudwatch.AlarmProps{
		AlarmName:          jsii.String(alarmNamePrefix(a.stage) + s.name),
		AlarmDescription:   jsii.String(s.description),
		Metric:             s.metric,
		Threshold:          jsii.Number(s.threshold),
		ComparisonOperator: s.op,
		EvaluationPeriods:  jsii.Number(s.periods),
		DatapointsToAlarm:  jsii.Number(s.periods),
		TreatMissingData:   s.missing,
	})
	alarm.AddAlarmAction(a.action)
	a.all = append(a.all, alarm)
	return alarm
}

// queueAlarms gives a work queue and its dead-letter queue their two alarms:
// the oldest message of the queue is older than oldestMessageAlarmHours (the
// consumer is not consuming), and the dead-letter queue grew (dlqGrew). id
// prefixes the construct ids ("TickerQueue"), name the alarm names
// ("ticker"). Every queue with a dead-letter queue gets them with this one
// call: the ticker queue now, the analysis queue when it exists.
func (a *alarmSet) queueAlarms(id, name string, queue, dlq awssqs.IQueue) {
	a.add(alarmSpec{
		id: id + "OldestMessageAlarm", name: name + "-queue-oldest-message",
		description: "The oldest message on " + queueName(queue) + " has waited more than 3 hours: its consumer is not consuming " +
			"(event source mapping disabled, function failing or throttled). Check the event source mapping and the consumer's errors and logs.",
		metric: queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{
			Period: five, Statistic: jsii.String("Maximum"),
		}),
		threshold: oldestMessageAlarmHours * 3600,
		op:        awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
	})
	a.dlqGrew(id+"DLQGrewAlarm", name+"-dlq-grew", dlq, "messages of "+queueName(queue)+" that failed on every attempt")
}

// dlqGrew alarms when messages were added to a dead-letter queue: the
// increase of its visible messages from one 5-minute period to the next,
// DIFF(FILL(visible, 0)), is above 0. Unlike "visible > 0", it returns to OK
// at the next period when nothing new arrives, even while earlier messages
// wait to be redriven, so a new failure notifies again instead of hiding
// behind an alarm that is already red. FILL(…, 0) makes the first message in a
// queue that had been idle (SQS publishes no metrics for an idle empty queue)
// count as an increase from 0. A redrive or purge is a decrease: OK.
func (a *alarmSet) dlqGrew(id, name string, dlq awssqs.IQueue, what string) {
	visible := dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
		Period: five, Statistic: jsii.String("Maximum"),
	})
	a.add(alarmSpec{
		id: id, name: name,
		description: "New messages in the dead-letter queue " + queueName(dlq) + ": " + what +
			". Inspect them, fix the cause, then redrive or purge (runbook). The alarm clears at the next period; the queue's depth stays on the dashboard.",
		metric: awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression:   jsii.String("DIFF(FILL(visible, 0))"),
			UsingMetrics: &map[string]awscloudwatch.IMetric{"visible": visible},
			Label:        jsii.String("messages added to " + queueName(dlq)),
			Period:       five,
		}),
		threshold: 0,
		op:        awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
	})
}

// queueName is the name a queue was given (a literal, for descriptions and
// labels), or its QueueName attribute when it was not created here with one.
func queueName(q awssqs.IQueue) string {
	if c, ok := q.Node().DefaultChild().(awssqs.CfnQueue); ok && c.QueueName() != nil {
		return *c.QueueName()
	}
	return *q.QueueName()
}

func newMonitoring(scope constructs.Construct, cfg Config, fns *functions, q *tickerQueue, aq *analysisQueue, failures *failureQueues) *monitoring {
	stage := cfg.Stage
	topic := awssns.NewTopic(scope, jsii.String("AlarmTopic"), &awssns.TopicProps{
		TopicName:   jsii.String("zsm-alarms-" + stage),
		DisplayName: jsii.String("ZSM Seven backend alarms (" + stage + ")"),
		EnforceSSL:  jsii.Bool(true),
	})
	allowAlarmsToPublish(topic, stage)
	if cfg.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	a := &alarmSet{scope: scope, stage: stage, action: awscloudwatchactions.NewSnsAction(topic)}
	gt0 := awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD

	// The work queues: consumed, and nothing new dead-lettered.
	a.queueAlarms("TickerQueue", "ticker", q.queue, q.dlq)
	a.queueAlarms("AnalysisQueue", "analysis", aq.queue, aq.dlq)
	// The failure queues of the scheduled jobs: anything new is a missed run.
	a.dlqGrew("ScheduleDLQGrewAlarm", "schedule-dlq-grew", failures.schedules,
		"schedule invocations EventBridge Scheduler could not deliver")
	a.dlqGrew("AsyncFailuresGrewAlarm", "async-failures-grew", failures.asyncInvocations,
		"asynchronous invocations of the scheduled functions that failed after retries")

	for _, f := range fns.all() {
		a.add(alarmSpec{
			id: upperFirst(f.Name) + "ErrorsAlarm", name: f.Name + "-errors",
			description: "Invocations of " + f.FunctionName(stage) + " ended in an error (see its log group " + f.LogGroupName(stage) + ").",
			metric:      f.Fn.MetricErrors(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")}),
			threshold:   0, op: gt0,
		})
	}

	custom := func(name, statistic string, period awscdk.Duration) awscloudwatch.Metric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String(metrics.Namespace),
			MetricName:    jsii.String(name),
			DimensionsMap: &map[string]*string{metrics.DimensionStage: jsii.String(stage)},
			Statistic:     jsii.String(statistic),
			Period:        period,
		})
	}
	a.add(alarmSpec{
		id: "PolygonThrottledAlarm", name: "polygon-throttled",
		description: "Polygon answered 429: the pacing (POLYGON_CALLS_PER_MINUTE) exceeds the plan or another client shares the key.",
		metric:      custom(metrics.PolygonThrottled, "Sum", five),
		threshold:   0, op: gt0,
	})
	a.add(alarmSpec{
		id: "PolygonKeyRefusedAlarm", name: "polygon-key-refused",
		description: "processTicker stopped a run because Polygon refused the key (400 missing, 401 unknown) or the plan (403 NOT_AUTHORIZED); " +
			"the messages stay queued. Put a valid key in the stage's secret or fix the plan (runbook), then let the queue drain.",
		metric:    custom(metrics.PolygonKeyRefused, "Sum", five),
		threshold: 0, op: gt0,
	})
	a.add(alarmSpec{
		id: "AnalysisFallbackAlarm", name: "analysis-fallback",
		description: "An analysis was produced by the rules analyst instead of xAI (key missing, API failing or output invalid); the stored item says why.",
		metric:      custom(metrics.AnalysisFallback, "Sum", five),
		threshold:   0, op: gt0,
	})
	a.add(alarmSpec{
		id: "AnalysisFailedAlarm", name: "analysis-failed",
		description: "Portfolio analyses ended without a result (handed back to the analysis queue for a retry, a poison message, or a fan-out message not queued); " +
			"the analyzePortfolio log line \"analysis failed\" names the portfolio and the error.",
		metric:    custom(metrics.AnalysisFailed, "Sum", five),
		threshold: 0, op: gt0,
	})
	hour := awscdk.Duration_Hours(jsii.Number(1))
	lt1 := awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD
	breaching := awscloudwatch.TreatMissingData_BREACHING
	a.add(alarmSpec{
		id: "StaleTickerDataAlarm", name: "ticker-data-stale",
		description: "No ticker-data row written or found current for 74 hours (longer than the weekend gap): the nightly ticker pipeline is not running.",
		metric: awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String("FILL(processed, 0) + FILL(current, 0)"),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"processed": custom(metrics.TickersProcessed, "Sum", hour),
				"current":   custom(metrics.TickersCurrent, "Sum", hour),
			},
			Label:  jsii.String("ticker rows written or already current"),
			Period: hour,
		}),
		threshold: 1, op: lt1, periods: staleWindowHours, missing: breaching,
	})
	a.add(alarmSpec{
		id: "StaleAnalysisAlarm", name: "analysis-stale",
		description: "No portfolio analysed (stored or reused) for 74 hours (longer than the weekend gap): the nightly analysis is not running.",
		metric:      custom(metrics.AnalysesAnalyzed, "Sum", hour),
		threshold:   1, op: lt1, periods: staleWindowHours, missing: breaching,
	})

	return &monitoring{topic: topic, alarms: a, dashboard: newDashboard(scope, stage, fns, q, aq, a.all, custom)}
}

// alarmNamePrefix starts the name of every alarm of a stage; the topic policy
// lets exactly the alarms with that prefix publish.
func alarmNamePrefix(stage string) string { return "zsm-" + stage + "-" }

// allowAlarmsToPublish adds the statement that lets CloudWatch deliver the
// stage's alarms. A topic policy replaces SNS's default one, whose Allow is
// what lets CloudWatch publish; EnforceSSL alone leaves only its Deny of plain
// HTTP, and every alarm action then fails with "... is not authorized to
// perform: SNS:Publish ... because no resource-based policy allows ...".
// The Allow names the service and is limited, against the confused deputy, to
// this account (aws:SourceAccount) and to the stage's alarms (aws:SourceArn,
// arn:...:cloudwatch:<region>:<account>:alarm:zsm-<stage>-*). The TLS Deny
// still applies to it: an explicit Deny wins over any Allow.
func allowAlarmsToPublish(topic awssns.Topic, stage string) {
	alarms := awscdk.Stack_Of(topic).FormatArn(&awscdk.ArnComponents{
		Service:      jsii.String("cloudwatch"),
		Resource:     jsii.String("alarm"),
		ResourceName: jsii.String(alarmNamePrefix(stage) + "*"),
		ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
	})
	topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarmsOfThisStage"),
		Effect:     awsiam.Effect_ALLOW,
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  jsii.Strings(*topic.TopicArn()),
		Conditions: &map[string]any{
			"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
			"ArnLike":      map[string]any{"aws:SourceArn": alarms},
		},
	}))
}

// newDashboard lays out the pipeline from left to right: queue, functions,
// market data, analysis, and below it the state of every alarm.
func newDashboard(scope constructs.Construct, stage string, fns *functions, q *tickerQueue, aq *analysisQueue, alarms []awscloudwatch.Alarm,
	custom func(name, statistic string, period awscdk.Duration) awscloudwatch.Metric) awscloudwatch.Dashboard {
	opts := func(stat string) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String(stat)}
	}
	graph := func(title string, left, right []awscloudwatch.IMetric, annotations ...*awscloudwatch.HorizontalAnnotation) awscloudwatch.IWidget {
		p := &awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &left, Width: jsii.Number(8), Height: jsii.Number(6)}
		if len(right) > 0 {
			p.Right = &right
		}
		if len(annotations) > 0 {
			p.LeftAnnotations = &annotations
		}
		return awscloudwatch.NewGraphWidget(p)
	}
	var invocations, errs, durations []awscloudwatch.IMetric
	for _, f := range fns.all() {
		invocations = append(invocations, f.Fn.MetricInvocations(opts("Sum")))
		errs = append(errs, f.Fn.MetricErrors(opts("Sum")))
		durations = append(durations, f.Fn.MetricDuration(opts("Maximum")))
	}
	var alarmRefs []interfacesawscloudwatch.IAlarmRef
	for _, a := range alarms {
		alarmRefs = append(alarmRefs, a)
	}
	return awscloudwatch.NewDashboard(scope, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String("zsm-seven-" + stage),
		Widgets: &[]*[]awscloudwatch.IWidget{
			{
				graph("Ticker queue depth", []awscloudwatch.IMetric{
					q.queue.MetricApproximateNumberOfMessagesVisible(opts("Maximum")),
					q.queue.MetricApproximateNumberOfMessagesNotVisible(opts("Maximum")),
					q.dlq.MetricApproximateNumberOfMessagesVisible(opts("Maximum")),
				}, nil),
				graph("Ticker queue age of oldest message (s)", []awscloudwatch.IMetric{
					q.queue.MetricApproximateAgeOfOldestMessage(opts("Maximum")),
				}, nil, &awscloudwatch.HorizontalAnnotation{
					Value: jsii.Number(oldestMessageAlarmHours * 3600), Label: jsii.String("alarm: 3 h"),
				}),
				graph("Tickers", []awscloudwatch.IMetric{
					custom(metrics.TickersQueued, "Sum", five),
					custom(metrics.TickersProcessed, "Sum", five),
					custom(metrics.PermanentFailures, "Sum", five),
					custom(metrics.TransientFailures, "Sum", five),
					custom(metrics.TickersRequeued, "Sum", five),
					custom(metrics.TickersDeadLettered, "Sum", five),
					custom(metrics.InvalidSymbols, "Sum", five),
				}, nil),
			},
			{
				graph("Invocations", invocations, nil),
				graph("Errors", errs, nil),
				graph("Duration (max, ms)", durations, nil),
			},
			{
				graph("Polygon calls, 429s and refused keys", []awscloudwatch.IMetric{
					custom(metrics.PolygonCalls, "Sum", five),
					custom(metrics.PolygonThrottled, "Sum", five),
					custom(metrics.PolygonKeyRefused, "Sum", five),
				}, nil),
				graph("LLM tokens and cost", []awscloudwatch.IMetric{
					custom(metrics.LLMPromptTokens, "Sum", five),
					custom(metrics.LLMCachedTokens, "Sum", five),
					custom(metrics.LLMCompletionTokens, "Sum", five),
					custom(metrics.LLMReasoningTokens, "Sum", five),
				}, []awscloudwatch.IMetric{
					custom(metrics.LLMCostUSD, "Sum", five),
				}),
				graph("Analyses", []awscloudwatch.IMetric{
					custom(metrics.AnalysesQueued, "Sum", five),
					custom(metrics.AnalysesAnalyzed, "Sum", five),
					custom(metrics.AnalysesStored, "Sum", five),
					custom(metrics.AnalysisFallback, "Sum", five),
					custom(metrics.AnalysisFailed, "Sum", five),
					custom(metrics.AnalysisSkipped, "Sum", five),
				}, []awscloudwatch.IMetric{
					custom(metrics.LLMCalls, "Sum", five),
				}),
			},
			{
				graph("Analysis queue depth", []awscloudwatch.IMetric{
					aq.queue.MetricApproximateNumberOfMessagesVisible(opts("Maximum")),
					aq.queue.MetricApproximateNumberOfMessagesNotVisible(opts("Maximum")),
					aq.dlq.MetricApproximateNumberOfMessagesVisible(opts("Maximum")),
				}, nil),
				graph("Analysis queue age of oldest message (s)", []awscloudwatch.IMetric{
					aq.queue.MetricApproximateAgeOfOldestMessage(opts("Maximum")),
				}, nil, &awscloudwatch.HorizontalAnnotation{
					Value: jsii.Number(oldestMessageAlarmHours * 3600), Label: jsii.String("alarm: 3 h"),
				}),
			},
			{
				awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
					Title:  jsii.String("Alarms"),
					Alarms: &alarmRefs,
					Width:  jsii.Number(24),
					Height: jsii.Number(4),
				}),
			},
			{
				// The nightly refresh from stored history
				// (docs/decisions/0002-stored-daily-history.md).
				graph("Market data: the night's refresh", []awscloudwatch.IMetric{
					custom(metrics.TickersCurrent, "Sum", five),
					custom(metrics.TickersBackfilled, "Sum", five),
					custom(metrics.TickersStale, "Sum", five),
					custom(metrics.TickersNotInGrouped, "Sum", five),
					custom(metrics.SplitsFound, "Sum", five),
				}, nil),
				graph("Market data: grouped daily and the key", []awscloudwatch.IMetric{
					custom(metrics.GroupedNotPublished, "Sum", five),
					custom(metrics.GroupedNotAuthorized, "Sum", five),
					custom(metrics.GroupedRowsSkipped, "Sum", five),
					custom(metrics.PolygonKeyRefused, "Sum", five),
					custom(metrics.RecordsReleased, "Sum", five),
				}, nil),
			},
		},
	})
}
