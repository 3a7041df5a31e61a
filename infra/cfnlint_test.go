package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cfn-lint, AWS's CloudFormation linter, on the templates the stack tests
// synthesize: what `make lint` checks on `cdk synth` output, so that `make
// test` also fails on a template that regresses. cfn-lint is a Python tool the
// project cannot install from its own files; where it is not on PATH, in the
// version the Makefile pins, these tests skip and say how to install it. The
// configuration (.cfnlintrc.yaml, each ignored rule with its reason) is read
// from the repository root.

// cfnLintVersion returns the version the Makefile pins (CFN_LINT_VERSION).
func cfnLintVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CFN_LINT_VERSION := (\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("the Makefile pins no CFN_LINT_VERSION")
	}
	return string(m[1])
}

// needCfnLint skips the test unless the pinned cfn-lint is on PATH: another
// version has other schemas and rules, so its findings would not be the ones
// make lint and CI see.
func needCfnLint(t *testing.T) {
	t.Helper()
	want := cfnLintVersion(t)
	out, err := exec.Command("cfn-lint", "--version").Output()
	if errors.Is(err, exec.ErrNotFound) {
		t.Skipf("cfn-lint is not on PATH: pip install cfn-lint==%s", want)
	}
	if got := strings.TrimSpace(string(out)); err != nil || got != "cfn-lint "+want {
		t.Skipf("cfn-lint on PATH is %q (%v), the project pins %s: pip install cfn-lint==%s", got, err, want, want)
	}
}

// cfnLint writes the templates to files named for their keys and lints them
// in one run (cfn-lint takes seconds to start) from the repository root with
// the project's configuration. It returns cfn-lint's findings by key, each
// "line:column:endLine:endColumn:RULE:message", and fails the test when
// cfn-lint could not lint at all (a bad configuration, an unreadable template).
func cfnLint(t *testing.T, docs map[string]map[string]any) map[string][]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"--config-file", ".cfnlintrc.yaml", "--format", "parseable", "--"}
	for key, doc := range docs {
		data, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, key+".template.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, path)
	}
	cmd := exec.Command("cfn-lint", args...)
	cmd.Dir = ".."
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	findings := map[string][]string{}
	n := 0
	for l := range strings.Lines(stdout.String()) {
		l = strings.TrimSpace(l)
		key, finding, ok := strings.Cut(strings.TrimPrefix(l, dir+string(filepath.Separator)), ".template.json:")
		if !ok || docs[key] == nil {
			t.Fatalf("cfn-lint printed %q, which is no finding in a template it was given\n%s%s", l, stdout.String(), stderr.String())
		}
		findings[key] = append(findings[key], finding)
		n++
	}
	// cfn-lint exits with 2, 4 and 8 for errors, warnings and informational
	// findings (or'ed together); anything else is a failure to lint.
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode()&^(2|4|8) != 0 || n == 0) {
		t.Fatalf("cfn-lint: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	return findings
}

// The templates a deploy can be given: each stage's stack, each stage's
// import template (make import-plan) and the stack with an alarm address
// (deploy.yml's ALARM_EMAIL) have no cfn-lint finding under .cfnlintrc.yaml.
func TestCfnLintFindsNothing(t *testing.T) {
	needCfnLint(t)
	variants := map[string]map[string]any{
		"stack":       nil,
		"import":      {ctxImportTables: "true"},
		"alarm-email": {ctxAlarmEmail: "ops@example.com"},
	}
	docs := map[string]map[string]any{}
	for _, stage := range stages {
		for name, overrides := range variants {
			docs[stage+"-"+name] = synthWith(t, stage, overrides).doc
		}
	}
	findings := cfnLint(t, docs)
	for _, key := range sortedKeys(findings) {
		t.Errorf("cfn-lint on the %s template (lines as in the template indented like testdata/):\n%s",
			key, strings.Join(findings[key], "\n"))
	}
}

// The linter does lint: an unknown property is an error (E3002), on the
// dashboard too, whose Tags the configuration adds to cfn-lint's schema
// (infra/cfnlint-schema-patches.json) instead of ignoring E3002 there, so the
// tags are checked against CloudFormation's Tag shape, not waved through.
func TestCfnLintFindsUnknownProperties(t *testing.T) {
	needCfnLint(t)
	var doc map[string]any
	data, err := json.Marshal(synthStage(t, "dev").doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil { // a deep copy: the cached template stays as synthesized
		t.Fatal(err)
	}
	var dashboards []string
	for id, r := range doc["Resources"].(map[string]any) {
		if r := r.(map[string]any); r["Type"] == "AWS::CloudWatch::Dashboard" {
			dashboards = append(dashboards, id)
			p := props(r)
			p["DashboardNam"] = "misspelt"
			p["Tags"] = append(list(p["Tags"]), map[string]any{"Key": "owner", "Valeu": "ops"})
		}
	}
	if len(dashboards) != 1 {
		t.Fatalf("dashboards %v, want 1", dashboards)
	}
	var got []string
	for _, f := range cfnLint(t, map[string]map[string]any{"dev": doc})["dev"] {
		if parts := strings.SplitN(f, ":", 6); len(parts) == 6 {
			got = append(got, parts[4]+" "+parts[5])
		}
	}
	slices.Sort(got)
	want := []string{
		"E3002 Additional properties are not allowed ('DashboardNam' was unexpected. Did you mean 'DashboardName'?)",
		"E3002 Additional properties are not allowed ('Valeu' was unexpected)",
		"E3003 'Value' is a required property",
	}
	if !slices.Equal(got, want) {
		t.Errorf("cfn-lint findings\n got %q\nwant %q", got, want)
	}
}

// CI and the deploy workflow's test gate install the cfn-lint the Makefile
// pins.
func TestCfnLintPinnedOnceForCI(t *testing.T) {
	want := cfnLintVersion(t)
	for _, wf := range []string{"ci.yml", "deploy.yml"} {
		data, err := os.ReadFile("../.github/workflows/" + wf)
		if err != nil {
			t.Fatal(err)
		}
		var installs []string
		for _, m := range regexp.MustCompile(`pip install .*cfn-lint==([^\s"']+)`).FindAllSubmatch(data, -1) {
			installs = append(installs, string(m[1]))
		}
		if len(installs) != 1 || installs[0] != want {
			t.Errorf("%s installs cfn-lint %v, want once, exactly %s (Makefile CFN_LINT_VERSION)", wf, installs, want)
		}
	}
}
