package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/metrics"
)

// staleWindowHours is how long the pipeline may stay silent before the
// freshness alarms fire. Both jobs run five times a week; the longest regular
// gap between runs is the weekend (Friday 21:30 -> Monday 21:30 for tickers,
// Saturday 01:00 -> Tuesday 01:00 for analyses), 72 hours, plus two hours for
// the run itself. A market holiday does not open a gap: the jobs still run and
// rewrite the last trading day's row. The trade-off: a missed weekday run is
// reported by this backstop only when the window has passed; the Errors and
// dead-letter alarms report most failures within minutes.
const staleWindowHours = 74

// monitoring is the alarm topic and the dashboard.
type monitoring struct {
	topic     awssns.Topic
	dashboard awscloudwatch.Dashboard
}

func newMonitoring(scope constructs.Construct, cfg Config, fns *functions, q *tickerQueue, failures *failureQueues) *monitoring {
	stage := cfg.Stage
	topic := awssns.NewTopic(scope, jsii.String("AlarmTopic"), &awssns.TopicProps{
		TopicName:   jsii.String("zsm-alarms-" + stage),
		DisplayName: jsii.String("ZSM Seven backend alarms (" + stage + ")"),
		EnforceSSL:  jsii.Bool(true),
	})
	if cfg.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	action := awscloudwatchactions.NewSnsAction(topic)
	five := awscdk.Duration_Minutes(jsii.Number(5))

	type alarmSpec struct {
		id, name, description string
		metric                awscloudwatch.IMetric
		threshold             float64
		op                    awscloudwatch.ComparisonOperator
		periods               float64
		missing               awscloudwatch.TreatMissingData
	}
	add := func(a alarmSpec) {
		if a.periods == 0 {
			a.periods = 1
		}
		alarm := awscloudwatch.NewAlarm(scope, jsii.String(a.id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String("zsm-" + stage + "-" + a.name),
			AlarmDescription:   jsii.String(a.description),
			Metric:             a.metric,
			Threshold:          jsii.Number(a.threshold),
			ComparisonOperator: a.op,
			EvaluationPeriods:  jsii.Number(a.periods),
			DatapointsToAlarm:  jsii.Number(a.periods),
			TreatMissingData:   a.missing,
		})
		alarm.AddAlarmAction(action)
	}
	gt0 := awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD
	notBreaching := awscloudwatch.TreatMissingData_NOT_BREACHING

	// Dead-letter queues: any message there is a failure someone must look at.
	for _, d := range []struct {
		id, name, what string
		q              awssqs.Queue
	}{
		{"TickerDLQDepthAlarm", "ticker-dlq-not-empty", "ticker messages that failed 5 receives", q.dlq},
		{"ScheduleDLQDepthAlarm", "schedule-dlq-not-empty", "schedule invocations EventBridge Scheduler could not deliver", failures.schedules},
		{"AsyncFailureDepthAlarm", "async-failures-not-empty", "asynchronous invocations of the scheduled functions that failed after retries", failures.asyncInvocations},
	} {
		add(alarmSpec{
			id: d.id, name: d.name,
			description: "Messages waiting in " + "a dead-letter queue: " + d.what + ". Inspect, fix, then redrive or purge.",
			metric: d.q.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
				Period: five, Statistic: jsii.String("Maximum"),
			}),
			threshold: 0, op: gt0, missing: notBreaching,
		})
	}

	for _, f := range fns.all() {
		add(alarmSpec{
			id: upperFirst(f.Name) + "ErrorsAlarm", name: f.Name + "-errors",
			description: "Invocations of " + f.FunctionName(stage) + " ended in an error (see its log group " + f.LogGroupName(stage) + ").",
			metric:      f.Fn.MetricErrors(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")}),
			threshold:   0, op: gt0, missing: notBreaching,
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
	add(alarmSpec{
		id: "PolygonThrottledAlarm", name: "polygon-throttled",
		description: "Polygon answered 429: the pacing (POLYGON_CALLS_PER_MINUTE) exceeds the plan or another client shares the key.",
		metric:      custom(metrics.PolygonThrottled, "Sum", five),
		threshold:   0, op: gt0, missing: notBreaching,
	})
	add(alarmSpec{
		id: "AnalysisFallbackAlarm", name: "analysis-fallback",
		description: "An analysis was produced by the rules analyst instead of xAI (key missing, API failing or output invalid); the stored item says why.",
		metric:      custom(metrics.AnalysisFallback, "Sum", five),
		threshold:   0, op: gt0, missing: notBreaching,
	})
	hour := awscdk.Duration_Hours(jsii.Number(1))
	lt1 := awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD
	breaching := awscloudwatch.TreatMissingData_BREACHING
	add(alarmSpec{
		id: "StaleTickerDataAlarm", name: "ticker-data-stale",
		description: "No ticker-data row written for 74 hours (longer than the weekend gap): the nightly ticker pipeline is not running.",
		metric:      custom(metrics.TickersProcessed, "Sum", hour),
		threshold:   1, op: lt1, periods: staleWindowHours, missing: breaching,
	})
	add(alarmSpec{
		id: "StaleAnalysisAlarm", name: "analysis-stale",
		description: "No portfolio analysis stored for 74 hours (longer than the weekend gap): the nightly analysis is not running.",
		metric:      custom(metrics.AnalysesStored, "Sum", hour),
		threshold:   1, op: lt1, periods: staleWindowHours, missing: breaching,
	})

	return &monitoring{topic: topic, dashboard: newDashboard(scope, stage, fns, q, custom)}
}

// newDashboard lays out the pipeline from left to right: queue, functions,
// market data, analysis.
func newDashboard(scope constructs.Construct, stage string, fns *functions, q *tickerQueue,
	custom func(name, statistic string, period awscdk.Duration) awscloudwatch.Metric) awscloudwatch.Dashboard {
	five := awscdk.Duration_Minutes(jsii.Number(5))
	opts := func(stat string) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String(stat)}
	}
	graph := func(title string, left, right []awscloudwatch.IMetric) awscloudwatch.IWidget {
		p := &awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &left, Width: jsii.Number(8), Height: jsii.Number(6)}
		if len(right) > 0 {
			p.Right = &right
		}
		return awscloudwatch.NewGraphWidget(p)
	}
	var invocations, errs, durations []awscloudwatch.IMetric
	for _, f := range fns.all() {
		invocations = append(invocations, f.Fn.MetricInvocations(opts("Sum")))
		errs = append(errs, f.Fn.MetricErrors(opts("Sum")))
		durations = append(durations, f.Fn.MetricDuration(opts("Maximum")))
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
				}, nil),
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
				graph("Polygon calls and 429s", []awscloudwatch.IMetric{
					custom(metrics.PolygonCalls, "Sum", five),
					custom(metrics.PolygonThrottled, "Sum", five),
				}, nil),
				graph("LLM tokens and cost", []awscloudwatch.IMetric{
					custom(metrics.LLMPromptTokens, "Sum", five),
					custom(metrics.LLMCompletionTokens, "Sum", five),
				}, []awscloudwatch.IMetric{
					custom(metrics.LLMCostUSD, "Sum", five),
				}),
				graph("Analyses", []awscloudwatch.IMetric{
					custom(metrics.AnalysesStored, "Sum", five),
					custom(metrics.AnalysisFallback, "Sum", five),
				}, nil),
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
