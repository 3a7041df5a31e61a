package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
)

// The tables ticker-data-{stage} and portfolio-analyses-{stage} may already
// exist, owned by the Serverless (Python) stack this service replaces. They
// are taken over with `cdk import` (make import, docs/migration.md), which
// needs a resource mapping: the logical id of each table in this stack's
// template and the physical table name it stands for.

// importMapping is that mapping for a synthesized stack, built from the same
// list of owned tables as the template (ownedTables): logical id ->
// {"TableName": name}.
func importMapping(stack awscdk.Stack, stage string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, t := range ownedTables {
		if !t.imported {
			continue
		}
		table, ok := stack.Node().TryFindChild(&t.id).(awsdynamodb.Table)
		if !ok {
			panic("import mapping: no table " + t.id + " in " + *stack.StackName())
		}
		out[logicalID(table)] = map[string]string{"TableName": t.spec.Name(stage)}
	}
	return out
}

// importMappingFile is where the mapping of a stack is written in the cloud
// assembly, next to <stack>.template.json.
func importMappingFile(dir, stackName string) string {
	return filepath.Join(dir, stackName+".import-mapping.json")
}

// writeImportMapping writes the stack's mapping into the cloud assembly
// directory dir in the format of `cdk import --resource-mapping`.
func writeImportMapping(dir string, stack awscdk.Stack, stage string) (string, error) {
	data, err := json.MarshalIndent(importMapping(stack, stage), "", "  ")
	if err != nil {
		return "", err
	}
	path := importMappingFile(dir, *stack.StackName())
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write the import mapping: %w", err)
	}
	return path, nil
}
