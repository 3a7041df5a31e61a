package main

import (
	"strconv"
	"strings"
	"time"

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

	"github.com/zsmseven/backend/pkg/deploy"
)

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
		AlarmName:          jsii.String(deploy.AlarmNamePrefix(a.stage) + s.name),
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
		description: "The oldest message on " + queueName(queue) + " has waited more than " + hours(deploy.OldestMessageAlarmAge) + ": its consumer is not consuming " +
			"(event source mapping disabled, function failing or throttled). Check the event source mapping and the consumer's errors and logs.",
		metric: queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{
			Period: five, Statistic: jsii.String("Maximum"),
		}),
		threshold: deploy.OldestMessageAlarmAge.Seconds(),
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

	// The alarms on the service's own metrics, as the contract states them.
	for _, c := range deploy.Alarms {
		a.add(customAlarm(stage, c))
	}

	return &monitoring{topic: topic, alarms: a, dashboard: newDashboard(scope, stage, fns, q, aq, a.all)}
}

// customMetric is one of the service's own metrics (deploy.Metrics) of a
// stage, as a statistic over a period.
func customMetric(stage string, m deploy.Metric, statistic string, period awscdk.Duration) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(deploy.MetricNamespace),
		MetricName:    jsii.String(m.Name),
		DimensionsMap: &map[string]*string{deploy.MetricDimension: jsii.String(stage)},
		Statistic:     jsii.String(statistic),
		Period:        period,
	})
}

// customAlarm is the alarmSpec of an alarm of the contract: its metric, or
// the sum of its metrics with each missing period counted as 0.
func customAlarm(stage string, c deploy.Alarm) alarmSpec {
	period := awscdk.Duration_Seconds(jsii.Number(c.Period.Seconds()))
	spec := alarmSpec{
		id: c.ID, name: c.Name, description: c.Description,
		threshold: c.Threshold, periods: float64(c.EvaluationPeriods),
		op:      comparisons[c.Comparison],
		missing: awscloudwatch.TreatMissingData_NOT_BREACHING,
	}
	if c.MissingBreaches {
		spec.missing = awscloudwatch.TreatMissingData_BREACHING
	}
	if len(c.Metrics) == 1 {
		spec.metric = customMetric(stage, c.Metrics[0], c.Statistic, period)
		return spec
	}
	using := map[string]awscloudwatch.IMetric{}
	var terms []string
	for _, m := range c.Metrics {
		id := strings.ToLower(m.Name[:1]) + m.Name[1:]
		using[id] = customMetric(stage, m, c.Statistic, period)
		terms = append(terms, "FILL("+id+", 0)")
	}
	spec.metric = awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String(strings.Join(terms, " + ")),
		UsingMetrics: &using,
		Label:        jsii.String(c.Label),
		Period:       period,
	})
	return spec
}

// comparisons are the CDK's operators of the contract's comparisons.
var comparisons = map[deploy.Comparison]awscloudwatch.ComparisonOperator{
	deploy.GreaterThan: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
	deploy.LessThan:    awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
}

// hours says a duration in whole hours, e.g. "3 hours".
func hours(d time.Duration) string {
	if h := int(d.Hours()); h != 1 {
		return strconv.Itoa(h) + " hours"
	}
	return "1 hour"
}

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
		ResourceName: jsii.String(deploy.AlarmNamePrefix(stage) + "*"),
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
func newDashboard(scope constructs.Construct, stage string, fns *functions, q *tickerQueue, aq *analysisQueue, alarms []awscloudwatch.Alarm) awscloudwatch.Dashboard {
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
	// A graph of the contract (deploy.DashboardGraphs): sums over 5 minutes.
	// Each is placed once; one the layout below does not place gets a row of
	// its own at the end, so a graph added to the contract is never lost.
	placed := map[string]bool{}
	service := func(g deploy.Graph) awscloudwatch.IWidget {
		placed[g.Title] = true
		sums := func(ms []deploy.Metric) []awscloudwatch.IMetric {
			var out []awscloudwatch.IMetric
			for _, m := range ms {
				out = append(out, customMetric(stage, m, "Sum", five))
			}
			return out
		}
		return graph(g.Title, sums(g.Left), sums(g.Right))
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
	rows := []*[]awscloudwatch.IWidget{
		{
			graph("Ticker queue depth", []awscloudwatch.IMetric{
				q.queue.MetricApproximateNumberOfMessagesVisible(opts("Maximum")),
				q.queue.MetricApproximateNumberOfMessagesNotVisible(opts("Maximum")),
				q.dlq.MetricApproximateNumberOfMessagesVisible(opts("Maximum")),
			}, nil),
			graph("Ticker queue age of oldest message (s)", []awscloudwatch.IMetric{
				q.queue.MetricApproximateAgeOfOldestMessage(opts("Maximum")),
			}, nil, &awscloudwatch.HorizontalAnnotation{
				Value: jsii.Number(deploy.OldestMessageAlarmAge.Seconds()), Label: jsii.String("alarm: " + strconv.Itoa(int(deploy.OldestMessageAlarmAge.Hours())) + " h"),
			}),
			service(deploy.TickersGraph),
		},
		{
			graph("Invocations", invocations, nil),
			graph("Errors", errs, nil),
			graph("Duration (max, ms)", durations, nil),
		},
		{
			service(deploy.MarketDataGraph),
			service(deploy.LLMGraph),
			service(deploy.AnalysesGraph),
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
				Value: jsii.Number(deploy.OldestMessageAlarmAge.Seconds()), Label: jsii.String("alarm: " + strconv.Itoa(int(deploy.OldestMessageAlarmAge.Hours())) + " h"),
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
			// The nightly refresh of the stored history
			// (docs/decisions/0004-raw-bars-and-a-ledger.md).
			service(deploy.RefreshGraph),
			service(deploy.GroupedDailyGraph),
		},
	}
	var rest []awscloudwatch.IWidget
	for _, g := range deploy.DashboardGraphs {
		if !placed[g.Title] {
			rest = append(rest, service(g))
		}
	}
	if len(rest) > 0 {
		rows = append(rows, &rest)
	}
	return awscloudwatch.NewDashboard(scope, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String("zsm-seven-" + stage),
		Widgets:       &rows,
	})
}
