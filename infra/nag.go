package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// addNagChecks applies the cdk-nag AwsSolutions rules to scope. Findings are
// error annotations, so `cdk synth` fails on any that is not suppressed; the
// stack tests read the same annotations.
func addNagChecks(scope constructs.IConstruct) {
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
}

// suppress records one justified cdk-nag suppression on a construct (not its
// children). appliesTo narrows it to the named findings where the rule reports
// them (IAM4/IAM5); every suppression is listed in docs/infrastructure.md.
func suppress(c constructs.IConstruct, rule, reason string, appliesTo ...string) {
	s := &cdknag.NagPackSuppression{Id: jsii.String(rule), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		var list []any
		for _, a := range appliesTo {
			list = append(list, a)
		}
		s.AppliesTo = &list
	}
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{s}, jsii.Bool(false))
}

// logicalID is the CloudFormation logical id of a construct's main resource
// (as cdk-nag names it in findings, "<LogicalId.Arn>", and as `cdk import`
// maps it).
func logicalID(c constructs.IConstruct) string {
	el, ok := c.Node().DefaultChild().(awscdk.CfnElement)
	if !ok {
		panic("logicalID: " + *c.Node().Path() + " has no CloudFormation resource")
	}
	return *awscdk.Stack_Of(c).GetLogicalId(el)
}
