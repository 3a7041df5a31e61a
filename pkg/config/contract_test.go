package config

import (
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
)

// validValue is a value of v that its loader accepts.
func validValue(v deploy.Var) string {
	switch {
	case v.Default != "":
		return v.Default
	case v.Kind == deploy.KindURL:
		return "https://example.test/" + v.Name
	case v.Kind == deploy.KindDuration:
		return v.Max
	case v.Kind == deploy.KindInt:
		return v.Min
	}
	return "x-" + strconv.Itoa(len(v.Name))
}

// Each function's loader reads exactly the variables the contract lists for
// it: a variable read but not in the contract would be dropped by the local
// stack and never set by the stack; one in the contract but not read would
// be set for nothing. A loader and the contract cannot drift apart.
func TestLoadersReadExactlyTheContract(t *testing.T) {
	loaders := map[string]func(Lookup) error{
		deploy.ProcessTickers.Name:   func(l Lookup) error { _, err := LoadProcessTickers(l); return err },
		deploy.ProcessTicker.Name:    func(l Lookup) error { _, err := LoadProcessTicker(l); return err },
		deploy.AnalyzePortfolio.Name: func(l Lookup) error { _, err := LoadAnalyzePortfolio(l); return err },
	}
	if len(loaders) != len(deploy.Functions) {
		t.Fatalf("%d loaders for %d functions", len(loaders), len(deploy.Functions))
	}
	for _, fn := range deploy.Functions {
		t.Run(fn.Name, func(t *testing.T) {
			env := map[string]string{}
			for _, v := range fn.Vars() {
				env[v.Name] = validValue(v)
			}
			read := map[string]bool{}
			err := loaders[fn.Name](func(k string) (string, bool) {
				read[k] = true
				v, ok := env[k]
				return v, ok
			})
			if err != nil {
				t.Fatalf("the contract's values refused: %v", err)
			}
			// analyzePortfolio reads the variables of the provider it is
			// given, not those of every provider.
			want := map[string]bool{}
			for _, v := range fn.Vars() {
				want[v.Name] = true
			}
			if fn == deploy.AnalyzePortfolio {
				for _, p := range deploy.ModelProviders {
					if p.Name != deploy.DefaultModelProvider {
						for _, v := range p.Vars() {
							delete(want, v.Name)
						}
					}
				}
			}
			// The key variables are read by package secrets, not the loader.
			for _, v := range fn.Vars() {
				if v.Origin == deploy.HostOnly && v.Name != deploy.EnvPolygonAPIKey {
					delete(want, v.Name)
				}
			}
			if got, w := slices.Sorted(maps.Keys(read)), slices.Sorted(maps.Keys(want)); !slices.Equal(got, w) {
				t.Errorf("reads %v\ncontract %v", got, w)
			}
		})
	}
}

// A loader applies the contract's defaults and bounds: the edge values are
// accepted, one step beyond is refused naming the variable.
func TestLoadersApplyTheContractsBounds(t *testing.T) {
	for _, fn := range deploy.Functions {
		base := map[string]string{}
		for _, v := range fn.Vars() {
			if v.Required || v.Origin == deploy.FromStack {
				base[v.Name] = validValue(v)
			}
		}
		load := func(env map[string]string) error {
			l := lookup(env)
			switch fn {
			case deploy.ProcessTickers:
				_, err := LoadProcessTickers(l)
				return err
			case deploy.ProcessTicker:
				_, err := LoadProcessTicker(l)
				return err
			}
			_, err := LoadAnalyzePortfolio(l)
			return err
		}
		for _, v := range fn.Vars() {
			if v.Kind != deploy.KindInt && v.Kind != deploy.KindDuration {
				continue
			}
			with := func(val string) error {
				env := maps.Clone(base)
				env[v.Name] = val
				return load(env)
			}
			for _, edge := range []string{v.Min, v.Max} {
				if err := with(edge); err != nil {
					t.Errorf("%s %s=%s refused: %v", fn.Name, v.Name, edge, err)
				}
			}
			var below, above string
			if v.Kind == deploy.KindInt {
				below, above = strconv.Itoa(atoi(v.Min)-1), strconv.Itoa(atoi(v.Max)+1)
			} else {
				below, above = (parseDuration(v.Min) - time.Millisecond).String(), (parseDuration(v.Max) + time.Second).String()
			}
			for _, out := range []string{below, above} {
				if err := with(out); err == nil {
					t.Errorf("%s %s=%s accepted", fn.Name, v.Name, out)
				}
			}
		}
	}
}
