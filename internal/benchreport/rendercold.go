package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
)

// coldTarget is issue 7's target: init duration within 1.5 × hello world.
const coldTarget = 1.5

// renderCold writes the cold-start section.
func renderCold(p func(string, ...any), r report) {
	p("## Cold start")
	p("")
	p("Each bootstrap is built for the host as deployed (`-tags lambda.norpc -trimpath -buildvcs=false -ldflags=-s -w`, `CGO_ENABLED=0`, static), "+
		"and so are two references: **hello** (`internal/devstack/rie/testdata/hello`, `lambda.Start` of a handler that echoes its event) and **hello + AWS SDK** "+
		"(`internal/devstack/rie/testdata/hellosdk`: hello linking the DynamoDB and SQS clients, with `config.LoadDefaultConfig` and both clients built before `lambda.Start`). "+
		"Every function runs against an in-memory local stack (dynalite with the sample portfolio, localsqs, the sandbox market data, the rules analyst) with %d MB configured, "+
		"and its first event does real work: processTickers `{}` (queues the 7 sample tickers), processTicker the 7-record batch it queued, "+
		"analyzePortfolio `{\"portfolio_name\":\"ZSM Seven\",\"force\":true}`.", coldMemoryMB)
	p("")
	p("**Init duration** is measured as Lambda defines the init phase: from the moment the bootstrap process is started to its first "+
		"`GET /2018-06-01/runtime/invocation/next` on the Runtime API, which is when the runtime is ready and Lambda ends init. "+
		"The bootstrap is started with `AWS_LAMBDA_RUNTIME_API` pointing at a small in-process Runtime API (`rie.StartRuntime`: `invocation/next`, `invocation/{id}/response`, "+
		"`invocation/{id}/error`, `init/error`, with the request-id, deadline, function-ARN and trace headers) and the variables Lambda sets (`AWS_LAMBDA_FUNCTION_NAME`, "+
		"`_MEMORY_SIZE`, `_VERSION`, `AWS_REGION`, …); it is served one event, and its peak RSS (VmHWM from `/proc/<pid>/status`) is read at that first `/next` "+
		"(end of init) and after the first invocation. %d starts per function: each round starts every function in turn, after one unrecorded round that brings "+
		"the binaries into the page cache, so a slow spell of the machine falls on all of them.", roundsOf(r.Cold))
	p("")
	var hello, sdk *coldStart
	for i := range r.Cold {
		switch {
		case strings.HasPrefix(r.Cold[i].Name, "hello +"):
			sdk = &r.Cold[i]
		case strings.HasPrefix(r.Cold[i].Name, "hello"):
			hello = &r.Cold[i]
		}
	}
	ratio := func(a, b time.Duration) string {
		if b <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", float64(a)/float64(b))
	}
	p("| function | bootstrap | init median | init p90 | × hello (median) | × hello (p90) | peak RSS after init | after 1st invocation | × hello | 1st invocation | target |")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	var over []string
	for _, c := range r.Cold {
		med, p90, mem, target := "—", "—", "—", "init ≤ 1.5 × hello"
		if hello != nil && c.Name != hello.Name {
			med, p90 = ratio(c.Init, hello.Init), ratio(c.InitP90, hello.InitP90)
			if hello.PeakRSSKiB > 0 {
				mem = fmt.Sprintf("%.2f", float64(c.PeakRSSKiB)/float64(hello.PeakRSSKiB))
			}
			if float64(c.Init) > coldTarget*float64(hello.Init) && !strings.HasPrefix(c.Name, "hello") {
				over = append(over, c.Name)
			}
		}
		if strings.HasPrefix(c.Name, "hello") {
			target = "reference"
		}
		p("| %s | %s | %s | %s | %s | %s | %.1f MiB | %.1f MiB | %s | %s | %s |", c.Name, mib(c.HostBytes), ms2(c.Init), ms2(c.InitP90), med, p90,
			kib(c.InitRSSKiB), kib(c.PeakRSSKiB), mem, ms(c.FirstInvoke), target)
	}
	if r.ColdNote != "" {
		p("")
		p("%s", r.ColdNote)
	}
	p("")
	if hello != nil {
		if len(over) == 0 {
			p("Every service bootstrap's median init is within %.1f × hello's.", coldTarget)
		} else {
			p("**Target not met**: the median init of %s exceeds %.1f × hello's (%s).", strings.Join(over, ", "), coldTarget, ms2(hello.Init))
		}
		if sdk != nil {
			p("Most of the difference is the AWS SDK, not the service's own start-up: hello + AWS SDK alone takes %s (%s × hello), "+
				"and each service bootstrap's init divided by it is:", ms2(sdk.Init), ratio(sdk.Init, hello.Init))
			var parts []string
			for _, c := range r.Cold {
				if !strings.HasPrefix(c.Name, "hello") {
					parts = append(parts, fmt.Sprintf("%s %s", c.Name, ratio(c.Init, sdk.Init)))
				}
			}
			p("%s.", strings.Join(parts, ", "))
		}
		p("")
	}
	renderInits(p, r.Cold)

	renderDominant(p, r.Cold, hello, sdk)

	p("### Under the emulator, for the record")
	p("")
	p("The same starts under the pinned Runtime Interface Emulator (`rie.Start`), invoked twice with the same event. Its REPORT line is not used for the ratio: "+
		"its `Init Duration` times only the emulator's internal hand-off of the init request, which returns before the bootstrap has even started, so it reads tens of "+
		"microseconds whatever the function does, and its `Max Memory Used` repeats the configured memory size (%s MB). The previous estimate of the cold start, "+
		"the first invocation's wall time minus the second's, also charges to the cold start what the first invocation does once per execution environment "+
		"(the AWS SDK's first request, the first connections to DynamoDB, SQS and the market-data server), which Lambda counts in that invocation's Duration, not in Init Duration.", reportedMem(r.Cold))
	p("")
	p("| function | REPORT Init Duration | REPORT Max Memory Used | first − warm invocation | × hello |")
	p("| --- | ---: | ---: | ---: | ---: |")
	for _, c := range r.Cold {
		x := "—"
		if hello != nil && c.Name != hello.Name {
			x = ratio(c.EmulatorCold, hello.EmulatorCold)
		}
		p("| %s | %s | %d MB | %s | %s |", c.Name, c.EmulatorInit.Round(time.Microsecond), c.ReportedMemoryMB, ms(c.EmulatorCold), x)
	}
	p("")
	p("For scale: public measurements of a hello-world Go Lambda on provided.al2023 show about 40 ms init on arm64 and 51 ms on x86_64 (lambda-perf, Dec 2025). " +
		"This machine is not Lambda (no sandbox to set up, a different CPU share), so the figures here compare the bootstraps with each other and with hello, not with Lambda's absolute numbers.")
	p("")
}

// renderInits writes the package-initialisation breakdown.
func renderInits(p func(string, ...any), cs []coldStart) {
	if len(cs) == 0 || len(cs[0].Inits) == 0 {
		return
	}
	p("Package initialisation before `main` (`GODEBUG=inittrace=1`, median of 5 starts; CPU clock of the init functions and package-level variables, and bytes they allocate):")
	p("")
	p("| function | AWS SDK | aws-lambda-go | this module | standard library | costliest packages |")
	p("| --- | ---: | ---: | ---: | ---: | --- |")
	for _, c := range cs {
		cell := map[string]string{}
		var all []pkgInit
		for _, g := range c.Inits {
			cell[g.Origin] = fmt.Sprintf("%s, %d pkgs, %s", ms2(g.Clock), g.Packages, kb(g.Bytes))
			all = append(all, g.Top...)
		}
		// The three costliest over all origins.
		slices.SortStableFunc(all, func(a, b pkgInit) int { return cmp.Compare(b.Clock, a.Clock) })
		var top []string
		for _, t := range all[:min(3, len(all))] {
			top = append(top, fmt.Sprintf("`%s` %s", strings.TrimPrefix(t.Package, "github.com/aws/aws-sdk-go-v2/"), ms2(t.Clock)))
		}
		get := func(o string) string {
			if v, ok := cell[o]; ok {
				return v
			}
			return "—"
		}
		p("| %s | %s | %s | %s | %s | %s |", c.Name, get(originSDK), get(originLambda), get(originOwn), get(originStd), strings.Join(top, ", "))
	}
	p("")
}

func ms2(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func kib(n int64) float64 { return float64(n) / 1024 }

func kb(n int64) string { return fmt.Sprintf("%.0f KB", float64(n)/1000) }

func reportedMem(cs []coldStart) string {
	if len(cs) == 0 {
		return "?"
	}
	return fmt.Sprint(cs[0].ReportedMemoryMB)
}

// sdkService is the import path prefix of an AWS SDK service client.
const sdkService = "github.com/aws/aws-sdk-go-v2/service/"

// renderDominant says what the init phase of the service bootstraps is made
// of, from the package-initialisation figures.
func renderDominant(p func(string, ...any), cs []coldStart, hello, sdk *coldStart) {
	var svc []coldStart
	for _, c := range cs {
		if !strings.HasPrefix(c.Name, "hello") && c.PkgInits != nil {
			svc = append(svc, c)
		}
	}
	if len(svc) == 0 {
		return
	}
	var sdkInit, ownInit, unused []string
	for _, c := range svc {
		for _, g := range c.Inits {
			switch g.Origin {
			case originSDK:
				sdkInit = append(sdkInit, fmt.Sprintf("%s %s", c.Name, ms2(g.Clock)))
			case originOwn:
				ownInit = append(ownInit, fmt.Sprintf("%s %s", c.Name, ms2(g.Clock)))
			}
		}
		// SDK clients a bootstrap would link without calling them (none
		// since each function is wired in its own package; measured, in
		// case one creeps back in).
		notCalled := map[string][]string{
			"processTickers":   {"secretsmanager"},
			"analyzePortfolio": {"sqs"},
		}[c.Name]
		for _, s := range notCalled {
			if d := initOf(c.PkgInits, sdkService+s); d > 0 {
				unused = append(unused, fmt.Sprintf("%s %s (%s)", c.Name, ms2(d), s))
			}
		}
	}
	p("What dominates is loading and initialising the linked packages, not the service's own start-up:")
	p("")
	if hello != nil && hello.PkgInits != nil {
		var parts []string
		for _, c := range svc {
			parts = append(parts, fmt.Sprintf("%s %s of %s", c.Name, ms2(totalInit(c.Inits)-totalInit(hello.Inits)), ms2(c.Init-hello.Init)))
		}
		p("- Package initialisation (all origins) accounts for this much of each bootstrap's gap to hello: %s; the rest is starting a larger process — "+
			"mapping and faulting in a bigger binary and heap (peak RSS at the end of init above) — and `main`.", strings.Join(parts, ", "))
	}
	p("- The AWS SDK's package initialisation before `main`: %s (medians of the table above); the DynamoDB client's `schemas` package alone is the largest single item. "+
		"`config.LoadDefaultConfig` links the SSO, SSO-OIDC, STS and sign-in clients for its credential providers, so every bootstrap initialises those too.", strings.Join(sdkInit, ", "))
	p("- This module's own packages: %s. The two package-level values that did work at start-up, the score-literal regexp of `pkg/analysis` "+
		"and the New York zone of `pkg/marketdata` (tzdata still embedded), are now built on first use.", strings.Join(ownInit, ", "))
	if sdk != nil {
		var lo, hi time.Duration
		for i, c := range svc {
			if i == 0 || c.Init < lo {
				lo = c.Init
			}
			hi = max(hi, c.Init)
		}
		p("- Between hello + AWS SDK (%s) and the service bootstraps (%s–%s) lie the packages only the service links and its `main` before `lambda.Start`: "+
			"configuration read and validated, `config.LoadDefaultConfig`, clients built, and for processTicker the Polygon key (here from `"+deploy.EnvPolygonAPIKey+"`; deployed, "+
			"from Secrets Manager, a network call that init then includes).", ms2(sdk.Init), ms2(lo), ms2(hi))
	}
	if len(unused) > 0 {
		p("- A bootstrap links SDK clients it never calls; their initialisation: %s. Each function is meant to be wired in its own package (`pkg/app/<function>`) "+
			"so that this list stays empty (`pkg/app/deps_test.go`).", strings.Join(unused, ", "))
	}
	p("")
}

func totalInit(gs []initGroup) time.Duration {
	var d time.Duration
	for _, g := range gs {
		d += g.Clock
	}
	return d
}
