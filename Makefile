# ZSM Seven backend processing. Targets are named for what a person wants;
# `make help` lists them. Everything the project needs is installed by its own
# files: Go modules from go.mod (tools included), node tools from package-lock.json.

SHELL       := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

STAGE     ?= dev
FN        ?= processticker
FUNCTIONS := processtickers processticker analyzeportfolio
GO        ?= go
NODE_BIN  := node_modules/.bin
# The CDK CLI, offline: no notices, no version check, no version reporting.
CDK       := CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=1 $(NODE_BIN)/cdk --no-notices --no-version-reporting

# jsii (the CDK's Go bindings) prints a large banner on Node 20; silence it.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# jsii v1.142 calls Node 20 end-of-life; this one takes a list of major versions.
# jsii starts node while Go packages initialise, so it must be in the environment
# of `go test`/`go run` (os.Setenv in a test is too late).
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# Reproducible Lambda builds: static, stripped, no VCS stamp, no local paths.
LAMBDA_ENV   := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -buildvcs=false -ldflags="-s -w"

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# node tools (aws-cdk CLI, dynalite) exactly as pinned in package-lock.json
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: tools
tools: node_modules/.installed ## install the pinned node tools (npm ci)

.PHONY: build
build: ## build each lambdas/<fn> into dist/<fn>/bootstrap (linux/arm64)
	@for fn in $(FUNCTIONS); do \
	  echo "build dist/$$fn/bootstrap"; \
	  $(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o dist/$$fn/bootstrap ./lambdas/$$fn; \
	done

.PHONY: test
test: node_modules/.installed ## run every test (unit, contract, dynalite, emulator end-to-end, stack)
	$(GO) test -timeout 45m ./...

.PHONY: run
run: node_modules/.installed ## the nightly pipeline locally on embedded defaults (no AWS, no keys)
	$(GO) run ./cmd/zsm run

# cfn-lint, AWS's CloudFormation linter, is a Python tool: the project's files
# cannot install it (Go modules and npm only), so make lint asks for exactly this
# version, which CI installs with pip (ci.yml; infra/cfnlint_test.go checks the
# two agree). What it checks and ignores, with the reasons: .cfnlintrc.yaml.
CFN_LINT_VERSION := 1.51.0
# make lint synthesizes each stage into its own cloud assembly here.
LINT_OUT := cdk.out/lint

.PHONY: lint
lint: cfn-lint-version build node_modules/.installed ## gofmt, go vet, staticcheck, actionlint, and cfn-lint on the dev and prod templates
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) tool actionlint
	@for stage in dev prod; do \
	  echo "synth $$stage into $(LINT_OUT)/$$stage"; \
	  $(CDK) synth -c stage=$$stage --quiet --output $(LINT_OUT)/$$stage; \
	done
	cfn-lint --config-file .cfnlintrc.yaml -- $(LINT_OUT)/dev/ZsmSevenBackend-dev.template.json $(LINT_OUT)/prod/ZsmSevenBackend-prod.template.json

# Fails make lint at once, in one line, unless cfn-lint $(CFN_LINT_VERSION) is on PATH.
.PHONY: cfn-lint-version
cfn-lint-version:
	@v=$$(cfn-lint --version 2>/dev/null || true); [ "$$v" = "cfn-lint $(CFN_LINT_VERSION)" ] || \
	  { echo "make lint needs cfn-lint $(CFN_LINT_VERSION) (found: $${v:-none}): pip install cfn-lint==$(CFN_LINT_VERSION)" >&2; exit 2; }

.PHONY: synth
synth: build node_modules/.installed ## synthesize the stack offline into cdk.out/ (STAGE=dev|prod)
	$(CDK) synth -c stage=$(STAGE) --quiet --output cdk.out

.PHONY: diff
diff: build node_modules/.installed ## show what a deploy would change (STAGE=dev|prod; needs AWS credentials)
	$(CDK) diff -c stage=$(STAGE)

# Interactive deploys ask before widening IAM or security groups; CI passes
# "--require-approval never" behind its protected environment.
CDK_DEPLOY_FLAGS ?= --require-approval broadening

.PHONY: deploy
deploy: build node_modules/.installed ## deploy the stack (STAGE=dev|prod; needs AWS credentials)
	$(CDK) deploy -c stage=$(STAGE) $(CDK_DEPLOY_FLAGS)

# ---- taking over the tables of the old Serverless stack (docs/migration.md) ----
STACK = ZsmSevenBackend-$(STAGE)

.PHONY: import-plan
import-plan: build node_modules/.installed ## offline: synthesize the import template into cdk.out/ and print the resource mapping (STAGE=dev|prod)
	$(CDK) synth -c stage=$(STAGE) -c importTables=true --quiet --output cdk.out
	@echo "cdk import will create $(STACK) with only these tables (Retain; name, keys, on-demand billing, managed KMS key), skipping every other resource:"
	@cat cdk.out/$(STACK).import-mapping.json

.PHONY: import
import: import-plan ## import the existing tables into a new stack with cdk import (STAGE=dev|prod; needs AWS credentials; then make deploy)
	$(CDK) import --app cdk.out --resource-mapping cdk.out/$(STACK).import-mapping.json $(STACK)

# ---- the pipeline: plan once, deploy exactly what was planned (deploy.yml) ----
# `make assembly` synthesizes the stage into ASSEMBLY; `make plan` diffs that
# assembly against the deployed stack with read-only credentials (the
# bootstrap's lookup role); `make deploy-assembly` deploys that same assembly,
# without rebuilding or resynthesizing. The optional alarm address comes from
# the environment (ALARM_EMAIL) and reaches the CLI as one quoted argument: no
# shell re-parses it.
ASSEMBLY ?= cdk.out

.PHONY: assembly
assembly: build node_modules/.installed ## synthesize the stage's cloud assembly for plan and deploy (STAGE=dev|prod; ALARM_EMAIL from the environment)
	@case "$(STAGE)" in dev|prod) ;; *) echo "STAGE must be dev or prod (got '$(STAGE)')" >&2; exit 2 ;; esac
	set -- -c stage=$(STAGE); \
	if [ -n "$${ALARM_EMAIL:-}" ]; then set -- "$$@" -c "alarmEmail=$$ALARM_EMAIL"; fi; \
	$(CDK) synth "$$@" --quiet --output $(ASSEMBLY)

.PHONY: plan
plan: ## diff the assembly (make assembly) against the deployed stack, read-only; also into ASSEMBLY/plan-STAGE.txt (needs AWS credentials)
	@test -x $(NODE_BIN)/cdk || { echo "the CDK CLI is not installed: make tools (or npm ci --ignore-scripts)" >&2; exit 2; }
	@test -f $(ASSEMBLY)/$(STACK).template.json || { echo "no $(STACK) in $(ASSEMBLY): make assembly STAGE=$(STAGE) first" >&2; exit 2; }
	$(CDK) diff --app $(ASSEMBLY) --method template --no-color $(STACK) 2>&1 | tee $(ASSEMBLY)/plan-$(STAGE).txt

.PHONY: deploy-assembly
deploy-assembly: ## deploy exactly the assembly make assembly wrote, no rebuild (STAGE=dev|prod; needs AWS credentials)
	@test -x $(NODE_BIN)/cdk || { echo "the CDK CLI is not installed: make tools (or npm ci --ignore-scripts)" >&2; exit 2; }
	@test -f $(ASSEMBLY)/$(STACK).template.json || { echo "no $(STACK) in $(ASSEMBLY): make assembly STAGE=$(STAGE) first" >&2; exit 2; }
	$(CDK) deploy --app $(ASSEMBLY) $(CDK_DEPLOY_FLAGS) $(STACK)

.PHONY: logs
logs: ## follow a deployed function's logs (FN=processTickers|processTicker|analyzePortfolio, or the lambdas/ dir name; STAGE=dev|prod)
	@case "$(FN)" in \
	  processTickers|processtickers) fn=processTickers ;; \
	  processTicker|processticker) fn=processTicker ;; \
	  analyzePortfolio|analyzeportfolio) fn=analyzePortfolio ;; \
	  *) echo "FN must be processTickers, processTicker or analyzePortfolio (got '$(FN)')" >&2; exit 2 ;; \
	esac; \
	case "$(STAGE)" in dev|prod) ;; *) echo "STAGE must be dev or prod (got '$(STAGE)')" >&2; exit 2 ;; esac; \
	aws logs tail "/aws/lambda/zsm-$$fn-$(STAGE)" --follow --format short

.PHONY: bench
bench: node_modules/.installed ## measure everything side by side and write docs/benchmarks.md (BENCH_SKIP_TEST=1: skip timing make test)
	$(GO) run ./internal/benchreport -out docs/benchmarks.md

.PHONY: reliability
reliability: node_modules/.installed ## run the fault-injection suite, write docs/reliability.md and print its table
	RELIABILITY_REPORT=$(CURDIR)/docs/reliability.md $(GO) test -count=1 ./reliability
	@sed -n '/^## /,$$p' docs/reliability.md

.PHONY: clean
clean: ## remove build output (dist/, cdk.out/)
	rm -rf dist cdk.out
