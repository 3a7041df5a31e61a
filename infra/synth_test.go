package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/zsmseven/backend/pkg/deploy"
)

// This file holds the machinery of the stack tests: the Lambda assets, one
// synthesis per stage per test binary, the golden templates and small helpers
// to walk a template. The assertions are in stack_test.go.

var update = flag.Bool("update", false, "rewrite the golden templates in testdata/")

// assetsDir holds <fn>/bootstrap for the test apps, built once in TestMain;
// outRoot holds the cloud assemblies the test apps write.
var assetsDir, outRoot string

func TestMain(m *testing.M) {
	flag.Parse()
	// jsii prints a large banner on Node 20. It starts node while the Go
	// packages initialise, before TestMain, so these only help a jsii process
	// started later; the Makefile and CI export them for `go test`.
	os.Setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
	os.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20") // a list of major versions
	dir, err := os.MkdirTemp("", "zsm-infra-assets-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "infra test:", err)
		os.Exit(1)
	}
	assetsDir = filepath.Join(dir, "assets")
	outRoot = filepath.Join(dir, "out")
	if err := buildAssets(assetsDir); err != nil {
		fmt.Fprintln(os.Stderr, "infra test:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	jsii.Close()
	os.Exit(code)
}

// buildAssets builds the three real bootstraps with the Makefile's flags, so
// the stack tests package what `make build` packages. Go's build cache makes
// this fast after the first run.
func buildAssets(dir string) error {
	for _, f := range deploy.Functions {
		fn := f.Dir
		out := filepath.Join(dir, fn, "bootstrap")
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags=-s -w",
			"-o", out, "./lambdas/"+fn)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build lambdas/%s: %v\n%s", fn, err, msg)
		}
	}
	return nil
}

// cdkContext is the "context" of cdk.json: the app's defaults and the feature
// flags, so the test apps synthesize what `cdk synth` synthesizes.
func cdkContext(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../cdk.json")
	if err != nil {
		t.Fatalf("read cdk.json: %v", err)
	}
	var doc struct {
		App     string         `json:"app"`
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse cdk.json: %v", err)
	}
	if len(doc.Context) == 0 {
		t.Fatal("cdk.json has no context")
	}
	return doc.Context
}

// synthesized is one synthesized stack.
type synthesized struct {
	stack    awscdk.Stack
	template assertions.Template
	// doc is the template as plain JSON values.
	doc map[string]any
	// outdir is the cloud assembly the test app wrote (assets staged there).
	outdir string
}

var (
	synthMu    sync.Mutex
	synthCache = map[string]*synthesized{}
)

// synthStage synthesizes the stack of a stage once per test binary.
func synthStage(t *testing.T, stage string) *synthesized {
	t.Helper()
	return synthWith(t, stage, nil)
}

// synthWith synthesizes a stack from cdk.json's context plus overrides, once
// per distinct set of overrides (the cache key).
func synthWith(t *testing.T, stage string, overrides map[string]any) *synthesized {
	t.Helper()
	ctx := cdkContext(t)
	ctx[ctxStage] = stage
	ctx[ctxAssetsDir] = assetsDir
	// What the CLI adds to the context for `cdk synth` (path and asset
	// metadata on, version reporting off as in cdk.json).
	ctx["aws:cdk:enable-path-metadata"] = true
	ctx["aws:cdk:enable-asset-metadata"] = true
	ctx["aws:cdk:version-reporting"] = false
	for k, v := range overrides {
		ctx[k] = v
	}
	keyJSON, _ := json.Marshal(overrides)
	key := stage + string(keyJSON)

	synthMu.Lock()
	defer synthMu.Unlock()
	if s, ok := synthCache[key]; ok {
		return s
	}
	var s *synthesized
	outdir := filepath.Join(outRoot, fmt.Sprint(len(synthCache)))
	defer func() {
		// Synthesis fails on unsuppressed cdk-nag findings (error annotations):
		// show them, not only "Validation failed".
		if r := recover(); r != nil {
			report, _ := os.ReadFile(filepath.Join(outdir, "validation-report.json"))
			t.Fatalf("synthesize %s: %v\n%s", key, r, report)
		}
	}()
	func() {
		app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(outdir)})
		cfg, err := ConfigFromContext(app)
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		stack := NewStack(app, deploy.StackName(cfg.Stage), &StackProps{Config: cfg})
		tmpl := assertions.Template_FromStack(stack, nil)
		raw, err := json.Marshal(tmpl.ToJSON())
		if err != nil {
			t.Fatalf("marshal template: %v", err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("unmarshal template: %v", err)
		}
		s = &synthesized{stack: stack, template: tmpl, doc: doc, outdir: outdir}
	}()
	synthCache[key] = s
	return s
}

// noPanic runs f and turns a panic (a failed CDK assertion, a jsii error) into
// a test failure with its message.
func noPanic(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%v", r)
		}
	}()
	f()
}

var stages = []string{deploy.StageDev, deploy.StageProd}

// forEachStage runs a subtest per deployable stage.
func forEachStage(t *testing.T, f func(t *testing.T, stage string, s *synthesized)) {
	t.Helper()
	for _, stage := range stages {
		t.Run(stage, func(t *testing.T) { f(t, stage, synthStage(t, stage)) })
	}
}

// assetHash matches the content hashes of assets, which change with every
// build of a bootstrap.
var assetHash = regexp.MustCompile(`[0-9a-f]{64}`)

// goldenJSON is the template as stored in testdata/: indented, keys sorted,
// and each asset hash replaced by the name of the function directory whose
// bootstrap that asset holds ("<asset:processticker>"), so the golden file
// still says which code each function runs (two functions' code swapped is a
// diff) while a rebuild of a bootstrap is not. A 64-hex string that is no
// function's asset fails the test instead of being masked.
func goldenJSON(t *testing.T, s *synthesized) []byte {
	t.Helper()
	out, err := json.MarshalIndent(s.doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for dir, hash := range functionAssets(t, s) {
		names[hash] = dir
	}
	out = assetHash.ReplaceAllFunc(out, func(h []byte) []byte {
		dir, ok := names[string(h)]
		if !ok {
			t.Errorf("template holds the hash %s, which is no function's asset", h)
			return h
		}
		return []byte("<asset:" + dir + ">")
	})
	return append(out, '\n')
}

// functionAssets maps each function directory (deploy.Functions) to the hash of
// the asset that holds its bootstrap: the asset's staged copy in the cloud
// assembly, as the assets manifest names it, has exactly the bytes of the
// bootstrap built for that directory. Two directories with the same asset
// would make the mapping ambiguous and fail.
func functionAssets(t *testing.T, s *synthesized) map[string]string {
	t.Helper()
	manifest := filepath.Join(s.outdir, *s.stack.ArtifactId()+".assets.json")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatalf("assets manifest: %v", err)
	}
	var m struct {
		Files map[string]struct {
			Source struct {
				Path      string `json:"path"`
				Packaging string `json:"packaging"`
			} `json:"source"`
		} `json:"files"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("assets manifest %s: %v", manifest, err)
	}
	byContent := map[string]string{} // sha256 of a built bootstrap -> dir
	for _, f := range deploy.Functions {
		dir := f.Dir
		sum := fileSum(t, filepath.Join(assetsDir, dir, "bootstrap"))
		if prev, dup := byContent[sum]; dup {
			t.Fatalf("functions %s and %s have the same bootstrap", prev, dir)
		}
		byContent[sum] = dir
	}
	out := map[string]string{}
	for hash, f := range m.Files {
		if f.Source.Packaging != "zip" {
			continue // the template itself
		}
		sum := fileSum(t, filepath.Join(s.outdir, f.Source.Path, "bootstrap"))
		dir, ok := byContent[sum]
		if !ok {
			t.Errorf("asset %s (%s) holds no function's bootstrap", hash, f.Source.Path)
			continue
		}
		if prev, dup := out[dir]; dup {
			t.Errorf("assets %s and %s both hold %s's bootstrap", prev, hash, dir)
		}
		out[dir] = hash
	}
	return out
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// resources returns the template's resources of one type by logical id.
func resources(s *synthesized, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.doc["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

// props returns a resource's Properties.
func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// one returns the only resource of a type whose property key equals value.
func one(t *testing.T, s *synthesized, typ, key, value string) (string, map[string]any) {
	t.Helper()
	var ids []string
	for id, r := range resources(s, typ) {
		if props(r)[key] == value {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%s with %s=%q: found %d (%v), want 1", typ, key, value, len(ids), ids)
	}
	return ids[0], resources(s, typ)[ids[0]]
}

// ref returns the logical id a value points to ({"Ref": id} or
// {"Fn::GetAtt": [id, attr]}), or "".
func ref(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if id, ok := m["Ref"].(string); ok {
		return id
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
		id, _ := ga[0].(string)
		return id
	}
	return ""
}

// list turns a string-or-list policy field into a list.
func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// compact renders a value as one line of JSON for messages and substring checks.
func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// statement is one IAM policy statement with the role it belongs to.
type statement struct {
	policy  string   // logical id of the AWS::IAM::Policy
	roles   []string // logical ids of the roles it is attached to
	effect  string
	actions []string
	// resources as compact JSON strings (tokens included).
	resources []string
	raw       map[string]any
}

// statements walks every identity policy statement of the template.
func statements(t *testing.T, s *synthesized) []statement {
	t.Helper()
	var out []statement
	for id, r := range resources(s, "AWS::IAM::Policy") {
		p := props(r)
		var roles []string
		for _, rr := range list(p["Roles"]) {
			roles = append(roles, ref(rr))
		}
		doc := p["PolicyDocument"].(map[string]any)
		for _, st := range list(doc["Statement"]) {
			st := st.(map[string]any)
			x := statement{policy: id, roles: roles, raw: st}
			x.effect, _ = st["Effect"].(string)
			for _, a := range list(st["Action"]) {
				x.actions = append(x.actions, a.(string))
			}
			for _, res := range list(st["Resource"]) {
				if str, ok := res.(string); ok {
					x.resources = append(x.resources, str)
				} else {
					x.resources = append(x.resources, compact(res))
				}
			}
			if st["NotAction"] != nil || st["NotResource"] != nil {
				t.Errorf("policy %s uses NotAction/NotResource: %s", id, compact(st))
			}
			out = append(out, x)
		}
	}
	// Inline policies on roles would escape the walk above: there must be none.
	for id, r := range resources(s, "AWS::IAM::Role") {
		if p := props(r)["Policies"]; p != nil {
			t.Errorf("role %s has inline policies %s; expected only AWS::IAM::Policy resources", id, compact(p))
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func containsAll(haystack string, needles ...string) bool {
	for _, n := range needles {
		if !strings.Contains(haystack, n) {
			return false
		}
	}
	return true
}

// Values the tests give CloudFormation's pseudo parameters when they render
// an intrinsic to a concrete string (resolve).
var pseudo = map[string]string{
	"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "111122223333", "AWS::URLSuffix": "amazonaws.com",
}

// resolve renders a template value made of strings, pseudo-parameter Refs and
// Fn::Join to the string CloudFormation would produce; other intrinsics
// (references to resources) render as "<ref:LogicalId>".
func resolve(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if r, ok := v["Ref"].(string); ok {
			if p, ok := pseudo[r]; ok {
				return p
			}
			return "<ref:" + r + ">"
		}
		if j, ok := v["Fn::Join"].([]any); ok && len(j) == 2 {
			sep, _ := j[0].(string)
			var parts []string
			for _, p := range list(j[1]) {
				parts = append(parts, resolve(t, p))
			}
			return strings.Join(parts, sep)
		}
		if id := ref(v); id != "" {
			return "<ref:" + id + ">"
		}
	}
	t.Fatalf("cannot resolve %s", compact(v))
	return ""
}

// arnLike reports whether s matches an IAM ArnLike/StringLike pattern: "*"
// matches any run of characters, "?" any one character.
func arnLike(pattern, s string) bool {
	var re strings.Builder
	re.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(s)
}
