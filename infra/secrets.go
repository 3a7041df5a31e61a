package main

import (
	"encoding/json"

	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/deploy"
)

// newAPIKeysSecret creates the stage's secret WITHOUT real key values: the
// template holds the two key names with empty values, which the functions
// treat as "not set" (so processTicker fails clearly and analyzePortfolio uses
// the rules analyst) until an operator sets the real values with
// `aws secretsmanager put-secret-value` (README) or the deploy workflow does.
// CloudFormation only requires some generated field; it holds random
// characters and is never read.
//
// The GenerateSecretString block is frozen (TestSecretGenerateBlockIsFrozen):
// CloudFormation regenerates the secret's value whenever it changes, which
// would overwrite the keys operators put with the empty template.
func newAPIKeysSecret(scope constructs.Construct, stage string) awssecretsmanager.Secret {
	template, err := json.Marshal(map[string]string{deploy.SecretKeyPolygon: "", deploy.SecretKeyXAI: ""})
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	secret := awssecretsmanager.NewSecret(scope, jsii.String("APIKeys"), &awssecretsmanager.SecretProps{
		SecretName:  jsii.String(deploy.SecretName(stage)),
		Description: jsii.String("Polygon.io and xAI API keys of ZSM Seven (" + stage + "), JSON {\"" + deploy.SecretKeyPolygon + "\":\"...\",\"" + deploy.SecretKeyXAI + "\":\"...\"}; set with aws secretsmanager put-secret-value"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(string(template)),
			GenerateStringKey:    jsii.String("unused"),
			PasswordLength:       jsii.Number(8),
			ExcludePunctuation:   jsii.Bool(true),
		},
		RemovalPolicy: removalPolicy(stage),
	})
	suppress(secret, "AwsSolutions-SMG4",
		"Holds third-party API keys (Polygon.io, xAI) that only their providers can issue; Secrets Manager has no rotation function for them. Operators rotate them at the provider and put the new value.")
	return secret
}
