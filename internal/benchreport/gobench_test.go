package main

import (
	"reflect"
	"testing"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/zsmseven/backend/pkg/indicators
cpu: Intel(R) Xeon(R) Processor
BenchmarkIndicators/bars=250-2         	  201456	      5873 ns/op	    2048 B/op	       1 allocs/op
BenchmarkIndicators/bars=5000-2        	   10000	    114321 ns/op	   40960 B/op	       1 allocs/op
BenchmarkPacing-2   	       1	6012345678 ns/op	         1.002 wall/ideal	         0 429s	   7312 B/op	      89 allocs/op
BenchmarkBroken-2   	       1	 oops ns/op
PASS
ok  	github.com/zsmseven/backend/pkg/indicators	3.456s
`
	got := parseGoBench(out)
	want := []goBench{
		{Name: "BenchmarkIndicators/bars=250", N: 201456, Metrics: map[string]float64{"ns/op": 5873, "B/op": 2048, "allocs/op": 1}},
		{Name: "BenchmarkIndicators/bars=5000", N: 10000, Metrics: map[string]float64{"ns/op": 114321, "B/op": 40960, "allocs/op": 1}},
		{Name: "BenchmarkPacing", N: 1, Metrics: map[string]float64{"ns/op": 6012345678, "wall/ideal": 1.002, "429s": 0, "B/op": 7312, "allocs/op": 89}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parsed\n%+v\nwant\n%+v", got, want)
	}
}

func TestTrimProcs(t *testing.T) {
	for in, want := range map[string]string{
		"BenchmarkX-2": "BenchmarkX", "BenchmarkX/bars=250-16": "BenchmarkX/bars=250", "BenchmarkX": "BenchmarkX", "BenchmarkX/a-b": "BenchmarkX/a-b",
	} {
		if got := trimProcs(in); got != want {
			t.Errorf("trimProcs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplice(t *testing.T) {
	doc := "# Benchmarks\n\n## Indicator computation\n\nx\n\n## Market data\n\nold\n\n## Market data per night\n\nold nights\n\n" + analysisHeading +
		"\nold analysis\n\n### Analysis request size\n\ny\n\n" + coldHeading + "\nz\n"
	got, err := spliceMarket(doc, "## Market data\n\nnew\n")
	if want := "# Benchmarks\n\n## Indicator computation\n\nx\n\n## Market data\n\nnew\n\n" + analysisHeading + "\nold analysis\n\n### Analysis request size\n\ny\n\n" +
		coldHeading + "\nz\n"; err != nil || got != want {
		t.Fatalf("spliced %q, %v\nwant %q", got, err, want)
	}
	got, err = spliceAnalysis(doc, analysisHeading+"\nnew analysis\n\n")
	if want := "# Benchmarks\n\n## Indicator computation\n\nx\n\n## Market data\n\nold\n\n## Market data per night\n\nold nights\n\n" + analysisHeading +
		"\nnew analysis\n\n" + coldHeading + "\nz\n"; err != nil || got != want {
		t.Fatalf("spliced %q, %v\nwant %q", got, err, want)
	}
	for _, splice := range []func(string, string) (string, error){spliceMarket, spliceAnalysis} {
		if _, err := splice("# Benchmarks\n", "x"); err == nil {
			t.Error("a report without the sections was spliced")
		}
	}
	for h, want := range map[float64]string{24.48 / 3600: "24.5 s", 1.707: "102.4 min", 0.5: "30.0 min", 34.01: "34.0 h"} {
		if got := hours(h); got != want {
			t.Errorf("hours(%v) = %q, want %q", h, got, want)
		}
	}
}

func TestRoughly(t *testing.T) {
	for v, want := range map[float64]string{2800040: "2,800,000", 20040: "20,000", 30520: "30,500", 525.6: "526", 10000: "10,000"} {
		if got := roughly(v); got != want {
			t.Errorf("roughly(%v) = %q, want %q", v, got, want)
		}
	}
}
