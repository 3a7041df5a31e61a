package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
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

// scheduleGroupName is the stage's own schedule group. EventBridge Scheduler
// names the schedule group (not the schedule) as aws:SourceArn when it assumes
// the execution role, so a group of our own is what lets the role's trust
// policy admit exactly this stage's schedules.
func scheduleGroupName(stage string) string { return "zsm-seven-" + stage }

func newSchedules(scope constructs.Construct, cfg Config, fns *functions, failures *failureQueues) {
	tz := awscdk.TimeZone_Of(jsii.String(scheduleTimeZone))
	group := awsscheduler.NewScheduleGroup(scope, jsii.String("ScheduleGroup"), &awsscheduler.ScheduleGroupProps{
		ScheduleGroupName: jsii.String(scheduleGroupName(cfg.Stage)),
		// It holds nothing but the two schedules of this stack: deleted with
		// it (the default would retain it, and its fixed name would then
		// block a re-create).
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	// One role for both schedules, assumable by EventBridge Scheduler only on
	// behalf of this account's schedule group of this stage (the service's
	// confused-deputy conditions).
	role := awsiam.NewRole(scope, jsii.String("SchedulerRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{
				"StringEquals": map[string]any{
					"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID(),
					"aws:SourceArn":     group.ScheduleGroupArn(),
				},
			},
		}),
		Description: jsii.String("EventBridge Scheduler: invoke the nightly functions of " + cfg.Stage),
	})
	// What the role may do, written out: invoke exactly the two functions by
	// their unqualified ARNs (what the targets call; no version or alias is
	// published, so nothing needs "<arn>:*") and send to the schedules'
	// dead-letter queue.
	allow(role, []string{"lambda:InvokeFunction"}, *fns.processTickers.Fn.FunctionArn(), *fns.analyzePortfolio.Fn.FunctionArn())
	allow(role, []string{"sqs:SendMessage"}, *failures.schedules.QueueArn())

	target := func(fn *function, input awsscheduler.ScheduleTargetInput) awsscheduler.IScheduleTarget {
		return &lambdaTarget{
			arn:   fn.Fn.FunctionArn(),
			role:  role,
			dlq:   failures.schedules.QueueArn(),
			input: input,
		}
	}
	// Created after the group and after the role's policy, so a schedule
	// never fires before it may invoke its function.
	after := func(s awsscheduler.Schedule) { s.Node().AddDependency(group, role) }
	after(awsscheduler.NewSchedule(scope, jsii.String("ProcessTickersSchedule"), &awsscheduler.ScheduleProps{
		ScheduleName:  jsii.String(fns.processTickers.FunctionName(cfg.Stage)),
		ScheduleGroup: group,
		Description:   jsii.String("Queue every held ticker after the US close (weekdays 21:30 New York)"),
		Schedule:      awsscheduler.ScheduleExpression_Expression(jsii.String(processTickersCron), tz),
		// {} asks processTickers for a full scan. Explicit, because without an
		// Input the Scheduler sends an undocumented "default notification",
		// and aws-lambda-go fails an empty payload before the handler runs.
		Target: target(fns.processTickers, awsscheduler.ScheduleTargetInput_FromText(jsii.String("{}"))),
	}))
	// Later the same night: what the first run could not finish (the day not
	// yet published, tickers without a row) is queued again; a ticker whose
	// row is stored costs nothing (docs/decisions/0002-stored-daily-history.md).
	after(awsscheduler.NewSchedule(scope, jsii.String("CatchUpSchedule"), &awsscheduler.ScheduleProps{
		ScheduleName:  jsii.String(fns.processTickers.FunctionName(cfg.Stage) + "-catch-up"),
		ScheduleGroup: group,
		Description:   jsii.String("Queue what the night still lacks: the day if not published yet, tickers without a row (weekdays 23:30 New York)"),
		Schedule:      awsscheduler.ScheduleExpression_Expression(jsii.String(catchUpCron), tz),
		Target:        target(fns.processTickers, awsscheduler.ScheduleTargetInput_FromText(jsii.String(`{"catchUp":true}`))),
	}))
	after(awsscheduler.NewSchedule(scope, jsii.String("AnalyzePortfolioSchedule"), &awsscheduler.ScheduleProps{
		ScheduleName:  jsii.String(fns.analyzePortfolio.FunctionName(cfg.Stage)),
		ScheduleGroup: group,
		Description:   jsii.String("Analyze the portfolio the morning after each trading day (Tue-Sat 01:00 New York)"),
		Schedule:      awsscheduler.ScheduleExpression_Expression(jsii.String(analyzePortfolioCron), tz),
		Target: target(fns.analyzePortfolio, awsscheduler.ScheduleTargetInput_FromObject(map[string]any{
			"portfolio_name": cfg.AnalysisPortfolio,
		})),
	}))
}

// lambdaTarget is a schedule target that invokes a function with the given
// role and adds no permission of its own. awsschedulertargets.LambdaInvoke
// would call grantInvoke, which also allows "<function arn>:*" (every version
// and alias) — a wildcard cdk-nag rightly flags and nothing here needs; the
// role's policy is written out in newSchedules instead.
type lambdaTarget struct {
	arn   *string
	role  awsiam.IRole
	dlq   *string
	input awsscheduler.ScheduleTargetInput
}

// Bind implements awsscheduler.IScheduleTarget.
func (l *lambdaTarget) Bind(_ awsscheduler.ISchedule) *awsscheduler.ScheduleTargetConfig {
	return &awsscheduler.ScheduleTargetConfig{
		Arn:              l.arn,
		Role:             l.role,
		Input:            l.input,
		DeadLetterConfig: &awsscheduler.CfnSchedule_DeadLetterConfigProperty{Arn: l.dlq},
		RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
			MaximumRetryAttempts:     jsii.Number(scheduleRetryAttempts),
			MaximumEventAgeInSeconds: jsii.Number(scheduleMaxEventAgeH * 3600),
		},
	}
}
