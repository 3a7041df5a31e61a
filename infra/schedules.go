package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/deploy"
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
	group := awsscheduler.NewScheduleGroup(scope, jsii.String("ScheduleGroup"), &awsscheduler.ScheduleGroupProps{
		ScheduleGroupName: jsii.String(scheduleGroupName(cfg.Stage)),
		// It holds nothing but the schedules of this stack: deleted with
		// it (the default would retain it, and its fixed name would then
		// block a re-create).
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	// One role for the schedules, assumable by EventBridge Scheduler only on
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
	// What the role may do, written out: invoke exactly the scheduled functions by
	// their unqualified ARNs (what the targets call; no version or alias is
	// published, so nothing needs "<arn>:*") and send to the schedules'
	// dead-letter queue.
	targets := map[string]*function{}
	var invoked []string
	for _, s := range deploy.Schedules {
		if _, ok := targets[s.Target.Name]; !ok {
			targets[s.Target.Name] = fnByName(fns, s.Target.Name)
			invoked = append(invoked, *targets[s.Target.Name].Fn.FunctionArn())
		}
	}
	allow(role, []string{"lambda:InvokeFunction"}, invoked...)
	allow(role, []string{"sqs:SendMessage"}, *failures.schedules.QueueArn())

	tz := awscdk.TimeZone_Of(jsii.String(deploy.ScheduleTimeZone))
	// The schedules of the contract (pkg/deploy), each created after the
	// group and after the role's policy, so that none fires before it may
	// invoke its function.
	for _, s := range deploy.Schedules {
		fn := targets[s.Target.Name]
		sched := awsscheduler.NewSchedule(scope, jsii.String(s.ID), &awsscheduler.ScheduleProps{
			ScheduleName:  jsii.String(s.ScheduleName(cfg.Stage)),
			ScheduleGroup: group,
			Description:   jsii.String(fmt.Sprintf("%s (%s %s New York)", s.Description, s.Days(), s.At())),
			Schedule:      awsscheduler.ScheduleExpression_Expression(jsii.String(s.Expression()), tz),
			Target: &lambdaTarget{
				arn:   fn.Fn.FunctionArn(),
				role:  role,
				dlq:   failures.schedules.QueueArn(),
				input: awsscheduler.ScheduleTargetInput_FromText(jsii.String(s.Payload(cfg.AnalysisPortfolio))),
			},
		})
		sched.Node().AddDependency(group, role)
	}
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

// fnByName is the function of the contract's name.
func fnByName(fns *functions, name string) *function {
	for _, f := range fns.all() {
		if f.Name == name {
			return f
		}
	}
	panic("no function " + name)
}
