package dynamoitem

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Reader decodes an item attribute by attribute. An absent attribute reads
// as the zero value; an attribute of another type, or a malformed one,
// reads as the zero value too and records the first such problem in Err, so
// that a decoder reads every field and checks Err once.
type Reader struct {
	M   map[string]types.AttributeValue
	Err error
	// parent is the reader of the item this one is a part of (Of).
	parent *Reader
}

// NewReader reads m.
func NewReader(m map[string]types.AttributeValue) *Reader { return &Reader{M: m} }

// Fail records a problem with the attribute name, unless one is recorded.
func (r *Reader) Fail(name, what string) {
	err := fmt.Errorf("attribute %s: %s", name, what)
	for ; r != nil; r = r.parent {
		if r.Err == nil {
			r.Err = err
		}
	}
}

// Str reads a string (S).
func (r *Reader) Str(name string) string {
	switch v := r.M[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case nil:
		return ""
	}
	r.Fail(name, "not a string")
	return ""
}

// Num reads a number (N); ok reports whether the attribute is present.
func (r *Reader) Num(name string) (f float64, ok bool) {
	switch v := r.M[name].(type) {
	case *types.AttributeValueMemberN:
		f, err := strconv.ParseFloat(v.Value, 64)
		if err != nil {
			r.Fail(name, "not a number")
		}
		return f, true
	case nil:
		return 0, false
	}
	r.Fail(name, "not a number")
	return 0, false
}

// Int reads a whole number (N).
func (r *Reader) Int(name string) int64 {
	f, _ := r.Num(name)
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		r.Fail(name, "not an integer")
		return 0
	}
	return int64(f)
}

// Time reads an RFC 3339 time written as a string ("" is the zero time).
func (r *Reader) Time(name string) time.Time {
	s := r.Str(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		r.Fail(name, "not an RFC 3339 time")
	}
	return t
}

// List reads a list (L).
func (r *Reader) List(name string) []types.AttributeValue {
	switch v := r.M[name].(type) {
	case *types.AttributeValueMemberL:
		return v.Value
	case nil:
		return nil
	}
	r.Fail(name, "not a list")
	return nil
}

// Strs reads a list of strings (L of S); nil when absent.
func (r *Reader) Strs(name string) []string {
	l := r.List(name)
	if l == nil {
		return nil
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := e.(*types.AttributeValueMemberS)
		if !ok {
			r.Fail(name, "list of non-strings")
			return nil
		}
		out = append(out, s.Value)
	}
	return out
}

// Sub reads a map (M) as an item of its own; its problems are recorded in
// r. An absent map reads as an empty one.
func (r *Reader) Sub(name string) *Reader {
	switch v := r.M[name].(type) {
	case *types.AttributeValueMemberM:
		return r.Of(v.Value)
	case nil:
	default:
		r.Fail(name, "not a map")
	}
	return r.Of(map[string]types.AttributeValue{})
}

// Maps reads a list of maps (L of M), each as an item of its own whose
// problems are recorded in r.
func (r *Reader) Maps(name string) []*Reader {
	var out []*Reader
	for _, e := range r.List(name) {
		m, ok := e.(*types.AttributeValueMemberM)
		if !ok {
			r.Fail(name, "entry is not a map")
			return out
		}
		out = append(out, r.Of(m.Value))
	}
	return out
}

// Of reads m, a part of r's item: a problem in it is recorded in r too,
// when r has none yet.
func (r *Reader) Of(m map[string]types.AttributeValue) *Reader {
	return &Reader{M: m, parent: r}
}
