package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// goFile is one production Go file of the repository, parsed.
type goFile struct {
	path string // relative to the repository root, with slashes
	ast  *ast.File
	fset *token.FileSet
}

// productionFiles parses every non-test Go file of the repository outside
// pkg/deploy (and outside what is not source: node_modules, build output,
// testdata).
func productionFiles(t *testing.T) []goFile {
	t.Helper()
	root := "../.."
	var files []goFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", ".git", "testdata", "cdk.out", "dist", ".local":
				return filepath.SkipDir
			}
			if rel == "pkg/deploy" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		files = append(files, goFile{path: rel, ast: f, fset: fset})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("found only %d Go files: is the walk rooted at the repository?", len(files))
	}
	return files
}

// Every metric is emitted by production code, and every metric an alarm or
// the dashboard watches is emitted from a vendor-neutral place — a use case,
// the wiring's decorators — never only from one provider's adapter, where a
// second provider would leave the alarm quiet.
func TestEveryWatchedMetricIsEmittedOutsideTheAdapters(t *testing.T) {
	adapters := []string{"pkg/polygon"}
	for _, p := range ModelProviders {
		adapters = append(adapters, "pkg/"+p.Name)
	}
	byName := map[string]Metric{}
	for _, m := range Metrics {
		byName[varNameOf(t, m)] = m
	}
	emitters := map[string][]string{} // metric name -> packages referring to it
	for _, f := range productionFiles(t) {
		ast.Inspect(f.ast, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "deploy" {
				if m, ok := byName[sel.Sel.Name]; ok {
					emitters[m.Name] = append(emitters[m.Name], filepath.ToSlash(filepath.Dir(f.path)))
				}
			}
			return true
		})
	}
	watched := map[string]bool{}
	for _, a := range Alarms {
		for _, m := range a.Metrics {
			watched[m.Name] = true
		}
	}
	for _, g := range DashboardGraphs {
		for _, m := range append(slices.Clone(g.Left), g.Right...) {
			watched[m.Name] = true
		}
	}
	for _, m := range Metrics {
		var neutral []string
		for _, pkg := range emitters[m.Name] {
			if pkg == "infra" || pkg == "cmd/zsm" || strings.HasPrefix(pkg, "internal/") {
				continue // watchers and tools, not emitters
			}
			if !slices.Contains(adapters, pkg) {
				neutral = append(neutral, pkg)
			}
		}
		switch {
		case len(emitters[m.Name]) == 0:
			t.Errorf("metric %s is never referred to by production code", m.Name)
		case len(neutral) == 0:
			t.Errorf("metric %s is emitted only by %v (an adapter, or nothing that emits)", m.Name, emitters[m.Name])
		}
	}
	for name := range watched {
		if len(emitters[name]) == 0 {
			t.Errorf("watched metric %s has no emitter", name)
		}
	}
}

// varNameOf finds the package-level variable of this package that holds m,
// by its Name: the contract names each metric's variable after it.
func varNameOf(t *testing.T, m Metric) string {
	t.Helper()
	return m.Name
}

// No copy of the contract outside pkg/deploy: no variable name, metric name
// or schedule time is written in production code, not even in a comment or
// a help text — they are built from the contract (tests and docs excepted).
func TestNoCopyOfTheContractOutsideDeploy(t *testing.T) {
	var words []string
	for _, v := range Vars() {
		words = append(words, v.Name)
	}
	words = append(words, EnvModelProvider)
	for _, m := range Metrics {
		words = append(words, m.Name)
	}
	wordRE := regexp.MustCompile(`\b(` + strings.Join(words, "|") + `)\b`)
	var times []string
	for _, s := range Schedules {
		times = append(times, regexp.QuoteMeta(s.At()))
	}
	timeRE := regexp.MustCompile(`\b(` + strings.Join(times, "|") + `)\b`)
	for _, f := range productionFiles(t) {
		check := func(pos token.Pos, text string) {
			for _, loc := range wordRE.FindAllStringIndex(text, -1) {
				// deploy.TickersProcessed in a comment is a reference.
				if strings.HasSuffix(text[:loc[0]], "deploy.") {
					continue
				}
				t.Errorf("%s: %q is the contract's (pkg/deploy): refer to it", f.fset.Position(pos), text[loc[0]:loc[1]])
			}
			if m := timeRE.FindString(text); m != "" {
				t.Errorf("%s: schedule time %q is the contract's (pkg/deploy): derive it", f.fset.Position(pos), m)
			}
		}
		for _, cg := range f.ast.Comments {
			for _, c := range cg.List {
				check(c.Pos(), c.Text)
			}
		}
		ast.Inspect(f.ast, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					s = lit.Value
				}
				check(lit.Pos(), s)
			}
			return true
		})
	}
}
