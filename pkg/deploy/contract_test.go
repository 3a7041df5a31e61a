package deploy

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The contract's own values hold together: every default and bound parses
// in its variable's syntax, and every default lies within its bounds or its
// values. (Package config reads them without checking again.)
func TestContractValues(t *testing.T) {
	seen := map[string]Var{}
	for _, f := range Functions {
		for _, v := range f.Vars() {
			if prev, ok := seen[v.Name]; ok && !sameVar(prev, v) {
				t.Errorf("%s is declared twice, differently", v.Name)
			}
			seen[v.Name] = v
			if v.Doc == "" || v.Origin == "" || v.Kind == "" {
				t.Errorf("%s: doc, origin and kind are required", v.Name)
			}
			switch v.Kind {
			case KindInt:
				lo, err1 := strconv.Atoi(v.Min)
				hi, err2 := strconv.Atoi(v.Max)
				if err1 != nil || err2 != nil || lo > hi {
					t.Errorf("%s: bounds %q..%q", v.Name, v.Min, v.Max)
				}
				if v.Default != "" {
					if d, err := strconv.Atoi(v.Default); err != nil || d < lo || d > hi {
						t.Errorf("%s: default %q outside %d..%d", v.Name, v.Default, lo, hi)
					}
				}
			case KindDuration:
				lo, err1 := time.ParseDuration(v.Min)
				hi, err2 := time.ParseDuration(v.Max)
				if err1 != nil || err2 != nil || lo > hi {
					t.Errorf("%s: bounds %q..%q", v.Name, v.Min, v.Max)
				}
				if v.Default != "" {
					if d, err := time.ParseDuration(v.Default); err != nil || d < lo || d > hi {
						t.Errorf("%s: default %q outside %s..%s", v.Name, v.Default, lo, hi)
					}
				}
			case KindEnum:
				if !slices.Contains(v.Values, v.Default) {
					t.Errorf("%s: default %q not among %v", v.Name, v.Default, v.Values)
				}
			case KindURL:
				if v.Default != "" && !strings.HasPrefix(v.Default, "https://") {
					t.Errorf("%s: default %q is not an https URL", v.Name, v.Default)
				}
			}
			if v.Required && v.Default != "" {
				t.Errorf("%s: required with a default", v.Name)
			}
		}
	}
	if VarModelProvider.Default != DefaultModelProvider {
		t.Errorf("MODEL_PROVIDER default %q", VarModelProvider.Default)
	}
	for _, p := range ModelProviders {
		if !slices.Contains(VarModelProvider.Values, p.Name) {
			t.Errorf("provider %s is not a value of %s", p.Name, EnvModelProvider)
		}
		if p.URL.Kind != KindURL || p.MaxCompletionTokens.Kind != KindInt || p.AttemptTimeout.Kind != KindDuration || p.ReasoningEffort.Kind != KindEnum {
			t.Errorf("provider %s: variables of the wrong kinds", p.Name)
		}
	}
}

func sameVar(a, b Var) bool {
	return a.Name == b.Name && a.Kind == b.Kind && a.Default == b.Default && a.Origin == b.Origin && a.Min == b.Min && a.Max == b.Max
}

func TestSchedules(t *testing.T) {
	ny, err := time.LoadLocation(ScheduleTimeZone)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Schedules {
		if s.Hour == 2 {
			t.Errorf("%s fires at %s: daylight saving time skips or repeats 02:00-02:59", s.ID, s.At())
		}
		if s.Hour < 0 || s.Hour > 23 || s.Minute < 0 || s.Minute > 59 {
			t.Errorf("%s: time %s", s.ID, s.At())
		}
		if !s.PortfolioInput && (s.Input == "" || s.Input[0] != '{') {
			t.Errorf("%s: input %q is not a JSON object", s.ID, s.Input)
		}
	}
	if got := NightlyTickers.Expression(); got != "cron(30 21 ? * MON-FRI *)" {
		t.Errorf("expression %q", got)
	}
	if got := NightlyAnalysis.Expression(); got != "cron(0 1 ? * TUE-SAT *)" {
		t.Errorf("expression %q", got)
	}
	if got := NightlyAnalysis.Payload("*"); got != `{"portfolio_name":"*"}` {
		t.Errorf("payload %q", got)
	}
	if got := CatchUp.ScheduleName("dev"); got != "zsm-processTickers-dev-catch-up" {
		t.Errorf("name %q", got)
	}

	// Friday 2026-11-20's night: 21:30 and 23:30 that day, 01:00 Saturday;
	// across the spring-forward weekend the times stay New York's.
	for _, c := range []struct {
		day  string
		want []string
	}{
		{"2026-11-20", []string{"2026-11-20T21:30:00-05:00", "2026-11-20T23:30:00-05:00", "2026-11-21T01:00:00-05:00"}},
		{"2026-03-06", []string{"2026-03-06T21:30:00-05:00", "2026-03-06T23:30:00-05:00", "2026-03-07T01:00:00-05:00"}},
		{"2026-03-09", []string{"2026-03-09T21:30:00-04:00", "2026-03-09T23:30:00-04:00", "2026-03-10T01:00:00-04:00"}},
	} {
		d, _ := time.ParseInLocation(time.DateOnly, c.day, ny)
		var got []string
		for _, f := range Night(d, ny) {
			got = append(got, f.At.Format(time.RFC3339))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("night of %s: %v, want %v", c.day, got, c.want)
		}
	}
	d, _ := time.ParseInLocation(time.DateOnly, "2026-11-20", ny)
	if got := Describe(Night(d, ny)); got != "processTickers at 21:30, processTickers-catch-up at 23:30, analyzePortfolio at 01:00 the morning after" {
		t.Errorf("described %q", got)
	}
}

func TestMetricsAndAlarms(t *testing.T) {
	names := map[string]bool{}
	for _, m := range Metrics {
		if names[m.Name] || m.Name == "" || m.Doc == "" || (m.Unit != UnitCount && m.Unit != UnitNone) {
			t.Errorf("metric %+v: duplicate, unnamed, undocumented or without a unit", m)
		}
		names[m.Name] = true
	}
	watched := func(what string, ms []Metric) {
		for _, m := range ms {
			if !slices.Contains(Metrics, m) {
				t.Errorf("%s watches %s, which is not in Metrics", what, m.Name)
			}
		}
	}
	ids := map[string]bool{}
	for _, a := range Alarms {
		if ids[a.ID] || ids[a.Name] {
			t.Errorf("alarm %s: duplicate id or name", a.ID)
		}
		ids[a.ID], ids[a.Name] = true, true
		if len(a.Metrics) == 0 || a.Period <= 0 || a.EvaluationPeriods < 1 || a.Statistic == "" || a.Description == "" {
			t.Errorf("alarm %s is incomplete", a.ID)
		}
		if len(a.Metrics) > 1 && a.Label == "" {
			t.Errorf("alarm %s sums metrics without a label", a.ID)
		}
		watched("alarm "+a.ID, a.Metrics)
	}
	for _, g := range DashboardGraphs {
		watched("graph "+g.Title, append(slices.Clone(g.Left), g.Right...))
	}
	// Metrics are named for what they count, not for who answered: a second
	// provider emits the same names and the alarms keep watching.
	vendors := []string{"polygon", "massive", "grok"}
	for _, p := range ModelProviders {
		vendors = append(vendors, strings.ToLower(p.Name))
	}
	for _, m := range Metrics {
		for _, v := range vendors {
			if strings.Contains(strings.ToLower(m.Name), v) {
				t.Errorf("metric %s is named after the vendor %s", m.Name, v)
			}
		}
	}
}

// .env.example and the README document only the contract's variables.
func TestDocumentedVariablesAreTheContracts(t *testing.T) {
	sdk := regexp.MustCompile(`^AWS_`)
	known := map[string]bool{}
	for _, v := range Vars() {
		known[v.Name] = true
	}
	example, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	inExample := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#? ?([A-Z][A-Z0-9_]+)=`).FindAllStringSubmatch(string(example), -1) {
		name := m[1]
		inExample[name] = true
		if !known[name] && !sdk.MatchString(name) {
			t.Errorf(".env.example documents %s, which no function reads (not in pkg/deploy)", name)
		}
	}
	for name := range known {
		if !inExample[name] {
			t.Errorf("%s is in the contract but not in .env.example", name)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("`([A-Z][A-Z0-9]*_[A-Z0-9_]+)(=[^`]*)?`").FindAllStringSubmatch(string(readme), -1) {
		if name := m[1]; !known[name] && !sdk.MatchString(name) && !strings.HasPrefix(name, "JSII_") && name != "ALARM_EMAIL" && name != "BENCH_SKIP_TEST" {
			t.Errorf("README names %s, which is not in the contract", name)
		}
	}
}

// The deploy workflow writes the stage's secret from the environment's
// keys: it writes exactly the contract's key names (the market data's and
// each model provider's), each from the variable of the same name.
func TestDeployWorkflowWritesTheContractsKeys(t *testing.T) {
	b, err := os.ReadFile("../../.github/workflows/deploy.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`jq -n '\{([^}]*)\}'`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy.yml writes no secret with jq -n '{…}'")
	}
	var got []string
	for _, kv := range regexp.MustCompile(`(\w+): env\.(\w+)`).FindAllStringSubmatch(string(m[1]), -1) {
		if kv[1] != kv[2] {
			t.Errorf("secret key %s is written from %s", kv[1], kv[2])
		}
		got = append(got, kv[1])
	}
	want := []string{SecretKeyPolygon}
	for _, p := range ModelProviders {
		want = append(want, p.KeyName)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("deploy.yml writes the keys %v, the contract has %v", got, want)
	}
}
