package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsschedulertargets"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Schedule expressions, evaluated in America/New_York so they follow the
// market's clock through daylight saving time (neither falls in the 02:00-02:59
// hour that DST skips or repeats).
const (
	// processTickersCron: weekdays at 21:30, after the close and after Polygon
	// has published the day's bars.
	processTickersCron = "cron(30 21 ? * MON-FRI *)"
	// catchUpCron: weekdays at 23:30, the catch-up run of processTickers
	// ({"catchUp":true}): it queues again the day when Polygon had not
	// published it at 21:30, and the tickers whose row of the day is not
	// stored — before the analysis at 01:00, outside 02:00-02:59.
	catchUpCron = "cron(30 23 ? * MON-FRI *)"
	// analyzePortfolioCron: the morning after each trading day, 01:00.
	analyzePortfolioCron = "cron(0 1 ? * TUE-SAT *)"
	// scheduleTimeZone is the IANA zone of the schedules.
	scheduleTimeZone = "America/New_York"
)

// A schedule that cannot invoke its target is retried a few times within an
// hour (the Scheduler default is 185 attempts over 24 hours), then dropped into
// the schedules' dead-letter queue, which alarms.
const (
	scheduleRetryAttempts = 2
	scheduleMaxEventAgeH  = 1
)

func newSchedules(scope constructs.Construct, cfg Config, fns *functions, failures *failureQueues) {
	tz := awscdk.TimeZone_Of(jsii.String(scheduleTimeZone))
	// One role for both schedules, assumable by EventBridge Scheduler from this
	// account only. The targets add what it may do: invoke the two functions
	// and send to the schedules' dead-letter queue.
	role := awsiam.NewRole(scope, jsii.String("SchedulerRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{
				"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
			},
		}),
		Description: jsii.String("EventBridge Scheduler: invoke the nightly functions of " + cfg.Stage),
	})
	target := func(fn *function, input awsscheduler.ScheduleTargetInput) awsscheduler.IScheduleTarget {
		return awsschedulertargets.NewLambdaInvoke(fn.Fn, &awsschedulertargets.ScheduleTargetBaseProps{
			Input:           input,
			RetryAttempts:   jsii.Number(scheduleRetryAttempts),
			MaxEventAge:     awscdk.Duration_Hours(jsii.Number(scheduleMaxEventAgeH)),
			DeadLetterQueue: failures.schedules,
			Role:            role,
		})
	}
	awsscheduler.NewSchedule(scope, jsii.String("ProcessTickersSchedule"), &awsscheduler.ScheduleProps{
		ScheduleName: jsii.String(fns.processTickers.FunctionName(cfg.Stage)),
		Description:  jsii.String("Queue every held ticker after the US close (weekdays 21:30 New York)"),
		Schedule:     awsscheduler.ScheduleExpression_Expression(jsii.String(processTickersCron), tz),
		// {} asks processTickers for a full scan. Explicit, because without an
		// Input the Scheduler sends an undocumented "default notification",
		// and aws-lambda-go fails an empty payload before the handler runs.
		Target: target(fns.processTickers, awsscheduler.ScheduleTargetInput_FromText(jsii.String("{}"))),
	})
	awsscheduler.NewSchedule(scope, jsii.String("CatchUpSchedule"), &awsscheduler.ScheduleProps{
		ScheduleName: jsii.String(fns.processTickers.FunctionName(cfg.Stage) + "-catch-up"),
		Description:  jsii.String("Queue what the night still lacks: the day if not published yet, tickers without a row (weekdays 23:30 New York)"),
		Schedule:     awsscheduler.ScheduleExpression_Expression(jsii.String(catchUpCron), tz),
		Target:       target(fns.processTickers, awsscheduler.ScheduleTargetInput_FromText(jsii.String(`{"catchUp":true}`))),
	})
	awsscheduler.NewSchedule(scope, jsii.String("AnalyzePortfolioSchedule"), &awsscheduler.ScheduleProps{
		ScheduleName: jsii.String(fns.analyzePortfolio.FunctionName(cfg.Stage)),
		Description:  jsii.String("Analyze the portfolio the morning after each trading day (Tue-Sat 01:00 New York)"),
		Schedule:     awsscheduler.ScheduleExpression_Expression(jsii.String(analyzePortfolioCron), tz),
		Target: target(fns.analyzePortfolio, awsscheduler.ScheduleTargetInput_FromObject(map[string]any{
			"portfolio_name": cfg.AnalysisPortfolio,
		})),
	})
	// grantInvoke covers the function and its qualified ARNs (versions and
	// aliases, "<arn>:*") of exactly these two functions.
	var appliesTo []string
	for _, f := range []*function{fns.processTickers, fns.analyzePortfolio} {
		appliesTo = append(appliesTo, "Resource::<"+logicalID(f.Fn)+".Arn>:*")
	}
	suppressTree(role, "AwsSolutions-IAM5",
		"lambda:InvokeFunction on the qualified ARNs (<function arn>:*, versions and aliases) of the two scheduled functions only, as grantInvoke writes it; no other resource is wildcarded.",
		appliesTo...)
}
