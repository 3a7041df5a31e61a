package main

import (
	"testing"
	"time"
)

func TestParseInitTrace(t *testing.T) {
	// Lines as the Go 1.26 runtime prints them, with other output between.
	out := "init runtime @0.012 ms, 0.031 ms clock, 0 bytes, 0 allocs\n" +
		"some log line\n" +
		"init github.com/aws/aws-sdk-go-v2/service/dynamodb/schemas @1.4 ms, 0.69 ms clock, 586696 bytes, 3151 allocs\n" +
		"init github.com/zsmseven/backend/pkg/marketdata @1.2 ms, 0.056 ms clock, 12128 bytes, 23 allocs\n" +
		"init broken @x ms, y ms clock\n"
	got := parseInitTrace(out)
	want := map[string]pkgInit{
		"runtime": {Package: "runtime", Clock: 31 * time.Microsecond},
		"github.com/aws/aws-sdk-go-v2/service/dynamodb/schemas": {Package: "github.com/aws/aws-sdk-go-v2/service/dynamodb/schemas", Clock: 690 * time.Microsecond, Bytes: 586696},
		"github.com/zsmseven/backend/pkg/marketdata":            {Package: "github.com/zsmseven/backend/pkg/marketdata", Clock: 56 * time.Microsecond, Bytes: 12128},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, w := range want {
		g := got[k]
		if g.Package != w.Package || g.Bytes != w.Bytes || (g.Clock-w.Clock).Abs() > time.Microsecond/10 {
			t.Errorf("%s: %+v, want %+v", k, g, w)
		}
	}
}

func TestOriginOf(t *testing.T) {
	for pkg, want := range map[string]string{
		"runtime":                                    originStd,
		"vendor/golang.org/x/sys/cpu":                originStd,
		"crypto/internal/fips140/edwards25519":       originStd,
		"github.com/aws/smithy-go/eventstream":       originSDK,
		"github.com/aws/aws-sdk-go-v2/config":        originSDK,
		"github.com/aws/aws-lambda-go/lambdacontext": originLambda,
		"github.com/zsmseven/backend/pkg/analysis":   originOwn,
		"golang.org/x/time/rate":                     originOther,
	} {
		if got := originOf(pkg); got != want {
			t.Errorf("originOf(%s) = %s, want %s", pkg, got, want)
		}
	}
}

func TestPercentile(t *testing.T) {
	xs := []time.Duration{9, 1, 8, 2, 7, 3, 6, 4, 5, 10} // 1..10 shuffled
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{50, 5}, {90, 9}, {100, 10}, {1, 1}} {
		if got := percentile(xs, tc.p); got != tc.want {
			t.Errorf("p%d = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile([]int64{42}, 90); got != 42 {
		t.Errorf("single value: %d", got)
	}
	if got := median(xs); got != 6 {
		t.Errorf("median = %v, want 6 (upper middle of an even count)", got)
	}
}
