// Package dynamoitem is what the repositories share about a DynamoDB item:
// its size as DynamoDB counts it against its 400 KB limit (Size: the UTF-8
// length of every attribute name and value), checked against a budget below
// that limit before writing, so that an item too large is refused by
// construction rather than by every retry of a PutItem; and a Reader that
// decodes an item attribute by attribute, keeping the first problem.
package dynamoitem

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Limit is DynamoDB's largest item, in bytes (attribute names included).
const Limit = 400 * 1024

// Size is the size of an item: for each attribute its name's length plus its
// value's size.
func Size(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + value(v)
	}
	return n
}

// value follows DynamoDB's item-size rules: a string or binary its length;
// a number up to 21 bytes (about one byte per two significant digits, plus
// one); a boolean or null one byte; a list or map 3 bytes of overhead plus
// one per element, plus its elements (and a map's names).
func value(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		digits := len(strings.Trim(strings.NewReplacer("-", "", ".", "").Replace(v.Value), "0"))
		return min(21, (digits+1)/2+1)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + value(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + value(e)
		}
		return n
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		return 21 * len(v.Value)
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range v.Value {
			n += len(b)
		}
		return n
	}
	return 0
}
