package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The pipeline's rules, checked on the workflow files themselves (actionlint
// checks their syntax and expressions; these check what they are allowed to
// do). GitHub's own settings — environment reviewers and branch restrictions —
// are not in the repository: docs/infrastructure.md says how to set them.

// workflow is a workflow file split into its top (everything before "jobs:")
// and its jobs by id.
type workflow struct {
	path string
	top  string
	jobs map[string]string
}

var jobHeader = regexp.MustCompile(`^  ([A-Za-z0-9_-]+):\s*$`)

func readWorkflow(t *testing.T, name string) workflow {
	t.Helper()
	path := filepath.Join("..", ".github", "workflows", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w := workflow{path: path, jobs: map[string]string{}}
	lines := strings.Split(string(data), "\n")
	i := slices.Index(lines, "jobs:")
	if i < 0 {
		t.Fatalf("%s has no jobs", path)
	}
	w.top = strings.Join(lines[:i], "\n")
	current := ""
	for _, l := range lines[i+1:] {
		if m := jobHeader.FindStringSubmatch(l); m != nil {
			current = m[1]
			continue
		}
		if current != "" {
			w.jobs[current] += l + "\n"
		}
	}
	return w
}

// permissionsOf returns the lines of a job's (or the top's) permissions block.
func permissionsOf(block, indent string) []string {
	lines := strings.Split(block, "\n")
	for i, l := range lines {
		if l == indent+"permissions:" {
			var out []string
			for _, p := range lines[i+1:] {
				if !strings.HasPrefix(p, indent+"  ") {
					break
				}
				out = append(out, strings.TrimSpace(p))
			}
			return out
		}
		if strings.HasPrefix(l, indent+"permissions: ") {
			return []string{strings.TrimSpace(strings.TrimPrefix(l, indent+"permissions:"))}
		}
	}
	return nil
}

// steps splits a job into its steps (each "- " item of its steps list).
func steps(job string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(job, "\n") {
		switch {
		case l == "    steps:":
			in = true
		case !in, strings.HasPrefix(strings.TrimSpace(l), "#"):
		case strings.HasPrefix(l, "      - "):
			out = append(out, l+"\n")
		case strings.HasPrefix(l, "        ") || strings.TrimSpace(l) == "":
			if len(out) > 0 {
				out[len(out)-1] += l + "\n"
			}
		default:
			in = false
		}
	}
	return out
}

// runScript returns the script of a step's run: key, "" when it has none.
func runScript(step string) string {
	lines := strings.Split(step, "\n")
	for i, l := range lines {
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- "))
		if !strings.HasPrefix(t, "run:") {
			continue
		}
		if v := strings.TrimSpace(strings.TrimPrefix(t, "run:")); v != "|" {
			return v
		}
		var script []string
		for _, s := range lines[i+1:] {
			if !strings.HasPrefix(s, "          ") && strings.TrimSpace(s) != "" {
				break
			}
			script = append(script, s)
		}
		return strings.Join(script, "\n")
	}
	return ""
}

var workflowFiles = []string{"ci.yml", "deploy.yml"}

var pinned = regexp.MustCompile(`^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)$`)

// Every third-party action is pinned to a full commit SHA, with the release it
// is in a comment, and each action to one SHA everywhere.
func TestWorkflowsPinActionsToCommits(t *testing.T) {
	shas := map[string]string{}
	for _, name := range workflowFiles {
		data, err := os.ReadFile(filepath.Join("..", ".github", "workflows", name))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, l := range strings.Split(string(data), "\n") {
			if !strings.Contains(l, "uses:") {
				continue
			}
			n++
			m := pinned.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("%s:%d: %q is not pinned as owner/repo@<40-hex SHA> # vX.Y.Z", name, i+1, strings.TrimSpace(l))
				continue
			}
			if prev, ok := shas[m[1]]; ok && prev != m[2]+" "+m[3] {
				t.Errorf("%s:%d: %s pinned to %s %s here and %s elsewhere", name, i+1, m[1], m[2], m[3], prev)
			}
			shas[m[1]] = m[2] + " " + m[3]
		}
		if n == 0 {
			t.Errorf("%s uses no action", name)
		}
	}
	if shas["aws-actions/configure-aws-credentials"] == "" {
		t.Error("configure-aws-credentials is not used: the deploy cannot assume its role")
	}
}

// Every checkout leaves no token in .git/config, every Node is 22 (the LTS;
// Node 20 reached its end of life), and no script expands ${{ }}: values
// reach scripts through the environment, quoted, never pasted into the shell.
func TestWorkflowSteps(t *testing.T) {
	for _, name := range workflowFiles {
		w := readWorkflow(t, name)
		for id, job := range w.jobs {
			// The parse above saw every step of the job.
			if n := strings.Count(job, "\n      - "); n == 0 || n != len(steps(job)) {
				t.Errorf("%s job %s: %d steps parsed of %d", name, id, len(steps(job)), n)
			}
			for _, st := range steps(job) {
				switch {
				case strings.Contains(st, "uses: actions/checkout@"):
					if !strings.Contains(st, "persist-credentials: false") {
						t.Errorf("%s job %s: checkout without persist-credentials: false", name, id)
					}
				case strings.Contains(st, "uses: actions/setup-node@"):
					if !strings.Contains(st, "node-version: 22\n") {
						t.Errorf("%s job %s: setup-node not on Node 22:\n%s", name, id, st)
					}
				}
				if s := runScript(st); strings.Contains(s, "${{") {
					t.Errorf("%s job %s: a run script expands an expression (pass it through env: instead):\n%s", name, id, s)
				}
			}
			if strings.Contains(job, "alarmEmail=") {
				t.Errorf("%s job %s builds the alarmEmail context itself; make assembly reads ALARM_EMAIL from the environment", name, id)
			}
		}
	}
}

// Only the jobs that talk to AWS may mint an OIDC token, and they run no
// test or build code: in ci.yml none; in deploy.yml plan (read-only role) and
// deploy, which needs test and plan and deploys the planned assembly.
func TestWorkflowTokens(t *testing.T) {
	for _, name := range workflowFiles {
		w := readWorkflow(t, name)
		if top := permissionsOf(w.top, ""); top == nil || slices.ContainsFunc(top, func(p string) bool { return strings.Contains(p, "id-token") }) {
			t.Errorf("%s top-level permissions %v: want them set, without id-token", name, top)
		}
		var minting []string
		for id, job := range w.jobs {
			perms := permissionsOf(job, "    ")
			if perms == nil {
				t.Errorf("%s job %s has no job-level permissions", name, id)
			}
			token := slices.Contains(perms, "id-token: write")
			if token {
				minting = append(minting, id)
			}
			if strings.Contains(job, "configure-aws-credentials@") != token {
				t.Errorf("%s job %s: id-token %v but configures AWS credentials %v", name, id, token, !token)
			}
			if token {
				for _, forbidden := range []string{"make test", "make build", "make assembly", "make synth", "setup-go@", "go test", "go run"} {
					if strings.Contains(job, forbidden) {
						t.Errorf("%s job %s can mint a token and runs %q", name, id, forbidden)
					}
				}
				if !strings.Contains(job, "npm ci --ignore-scripts") {
					t.Errorf("%s job %s can mint a token and installs node packages with their install scripts", name, id)
				}
			}
		}
		slices.Sort(minting)
		want := map[string][]string{"ci.yml": nil, "deploy.yml": {"deploy", "plan"}}[name]
		if !slices.Equal(minting, want) {
			t.Errorf("%s: jobs with id-token: write %v, want %v", name, minting, want)
		}
	}

	w := readWorkflow(t, "deploy.yml")
	if p := permissionsOf(w.top, ""); !slices.Equal(p, []string{"{}"}) {
		t.Errorf("deploy.yml top-level permissions %v, want {}", p)
	}
	for _, id := range []string{"test", "assembly", "plan", "deploy"} {
		if w.jobs[id] == "" {
			t.Fatalf("deploy.yml has no job %s", id)
		}
	}
	// Only develop and main get anywhere (a dispatch on another branch runs nothing).
	for _, id := range []string{"test", "assembly"} {
		if !strings.Contains(w.jobs[id], "    if: github.ref == 'refs/heads/develop' || github.ref == 'refs/heads/main'\n") {
			t.Errorf("deploy.yml job %s is not limited to develop and main", id)
		}
	}
	if !strings.Contains(w.jobs["plan"], "    needs: assembly\n") {
		t.Error("plan does not need assembly")
	}
	if !strings.Contains(w.jobs["deploy"], "    needs: [test, plan]\n") {
		t.Error("deploy does not need test and plan")
	}
	stageEnv := func(id, dev, prod string) {
		want := "    environment: ${{ github.ref == 'refs/heads/main' && '" + prod + "' || '" + dev + "' }}\n"
		if !strings.Contains(w.jobs[id], want) {
			t.Errorf("deploy.yml job %s environment is not %s/%s", id, dev, prod)
		}
	}
	stageEnv("assembly", "dev-plan", "prod-plan")
	stageEnv("plan", "dev-plan", "prod-plan")
	stageEnv("deploy", "dev", "prod")
	if !strings.Contains(w.jobs["plan"], "make plan") || !strings.Contains(w.jobs["plan"], "GITHUB_STEP_SUMMARY") ||
		!strings.Contains(w.jobs["plan"], "AWS_PLAN_ROLE_ARN") {
		t.Error("plan does not run make plan with the plan role and write the job summary")
	}
	if !strings.Contains(w.jobs["deploy"], "make deploy-assembly") || strings.Contains(w.jobs["deploy"], "make deploy ") ||
		!strings.Contains(w.jobs["deploy"], "AWS_DEPLOY_ROLE_ARN") {
		t.Error("deploy does not deploy the planned assembly (make deploy-assembly) with the deploy role")
	}
	if !strings.Contains(w.jobs["assembly"], "ALARM_EMAIL: ${{ vars.ALARM_EMAIL }}") {
		t.Error("assembly does not pass ALARM_EMAIL through the environment")
	}
}

// Dependabot keeps the pins moving: actions, Go modules and npm.
func TestDependabotCoversEveryPinnedEcosystem(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", ".github", "dependabot.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, eco := range []string{"github-actions", "gomod", "npm"} {
		if !strings.Contains(string(data), "- package-ecosystem: "+eco+"\n") {
			t.Errorf("dependabot.yml does not update %s", eco)
		}
	}
}
