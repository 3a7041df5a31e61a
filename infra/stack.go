package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// StackProps configures a ZSM Seven backend stack.
type StackProps struct {
	awscdk.StackProps
	Config Config
}

// NewStack builds the whole backend of one stage: tables, queue, functions,
// schedules, secret and monitoring, with the cdk-nag AwsSolutions checks
// applied to it. The tests build the same stack through this function.
func NewStack(scope constructs.Construct, id string, props *StackProps) awscdk.Stack {
	cfg := props.Config
	sp := props.StackProps
	if sp.Description == nil {
		sp.Description = jsii.String("ZSM Seven backend processing (" + cfg.Stage + "): ticker pipeline and portfolio analysis")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &sp)
	awscdk.Tags_Of(stack).Add(jsii.String("project"), jsii.String("zsm-seven-backend"), nil)
	awscdk.Tags_Of(stack).Add(jsii.String("stage"), jsii.String(cfg.Stage), nil)

	store := newStorage(stack, cfg.Stage, cfg.ImportTables)
	q := newTickerQueue(stack, cfg.Stage)
	aq := newAnalysisQueue(stack, cfg.Stage)
	keys := newAPIKeysSecret(stack, cfg.Stage)
	failures := newFailureQueues(stack, cfg.Stage)
	fns := newFunctions(stack, cfg, store, q, aq, keys, failures)
	newSchedules(stack, cfg, fns, failures)
	newMonitoring(stack, cfg, fns, q, aq, failures)

	addNagChecks(stack)
	return stack
}
