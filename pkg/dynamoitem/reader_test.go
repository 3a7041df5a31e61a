package dynamoitem_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/dynamoitem"
)

func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

func TestReaderReadsEveryType(t *testing.T) {
	r := dynamoitem.NewReader(map[string]types.AttributeValue{
		"s": s("x"), "n": n("2.5"), "i": n("1795845900123"), "t": s("2026-11-28T06:00:00.123Z"),
		"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("a"), s("b")}},
		"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": s("v")}},
		"ms": &types.AttributeValueMemberL{Value: []types.AttributeValue{
			&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": s("1")}},
			&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": s("2")}},
		}},
	})
	f, ok := r.Num("n")
	maps := r.Maps("ms")
	if r.Str("s") != "x" || f != 2.5 || !ok || r.Int("i") != 1795845900123 ||
		!r.Time("t").Equal(time.Date(2026, 11, 28, 6, 0, 0, 123e6, time.UTC)) || strings.Join(r.Strs("l"), ",") != "a,b" ||
		r.Sub("m").Str("k") != "v" || len(maps) != 2 || maps[1].Str("k") != "2" || r.Err != nil {
		t.Fatalf("read wrongly: %v", r.Err)
	}
	// Absent attributes read as zero values, without a problem.
	if _, ok := r.Num("none"); ok || r.Str("none") != "" || r.Int("none") != 0 || !r.Time("none").IsZero() ||
		r.Strs("none") != nil || r.Maps("none") != nil || r.Sub("none").Str("k") != "" || r.Err != nil {
		t.Fatalf("absent attributes: %v", r.Err)
	}
}

func TestReaderKeepsTheFirstProblem(t *testing.T) {
	for _, c := range []struct {
		name string
		read func(r *dynamoitem.Reader)
		want string
	}{
		{"string of another type", func(r *dynamoitem.Reader) { r.Str("n") }, "attribute n: not a string"},
		{"fraction as an integer", func(r *dynamoitem.Reader) { r.Int("n") }, "attribute n: not an integer"},
		{"number of another type", func(r *dynamoitem.Reader) { r.Num("s") }, "attribute s: not a number"},
		{"list of numbers as strings", func(r *dynamoitem.Reader) { r.Strs("ln") }, "attribute ln: list of non-strings"},
		{"a time that is not one", func(r *dynamoitem.Reader) { r.Time("s") }, "attribute s: not an RFC 3339 time"},
		{"a map of another type", func(r *dynamoitem.Reader) { r.Sub("s") }, "attribute s: not a map"},
		{"a problem inside a map is the item's", func(r *dynamoitem.Reader) { r.Sub("m").Int("k") }, "attribute k: not a number"},
		{"the first problem is kept", func(r *dynamoitem.Reader) { r.Str("n"); r.Num("s") }, "attribute n: not a string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := dynamoitem.NewReader(map[string]types.AttributeValue{"s": s("x"), "n": n("2.5"),
				"ln": &types.AttributeValueMemberL{Value: []types.AttributeValue{n("1")}},
				"m":  &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": s("v")}}})
			c.read(r)
			if r.Err == nil || r.Err.Error() != c.want {
				t.Fatalf("error %v, want %q", r.Err, c.want)
			}
		})
	}
}
