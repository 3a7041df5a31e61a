package queue

import "github.com/zsmseven/backend/pkg/strictjson"

// ErrTrailingData means a body held more than one JSON value
// (strictjson.ErrTrailingData).
var ErrTrailingData = strictjson.ErrTrailingData

// DecodeObject decodes data, exactly one JSON value, into v, as every
// message type of the service's queues is decoded: strictjson.Decode
// (unknown fields refused, nothing after the value, error text shortened).
func DecodeObject(data []byte, v any) error { return strictjson.Decode(data, v) }
