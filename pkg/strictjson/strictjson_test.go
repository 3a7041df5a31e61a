package strictjson_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/zsmseven/backend/pkg/strictjson"
)

func TestDecode(t *testing.T) {
	type msg struct {
		A int `json:"a"`
	}
	var m msg
	if err := strictjson.Decode([]byte(` {"a":7} `), &m); err != nil || m.A != 7 {
		t.Fatalf("got %+v, %v", m, err)
	}
	for body, want := range map[string]string{
		`{"a":1}{}`:     strictjson.ErrTrailingData.Error(),
		`{"a":1} x`:     strictjson.ErrTrailingData.Error(),
		`{"a":1,"b":2}`: `unknown field "b"`,
		`{"a":"x"}`:     "cannot unmarshal string",
		`{"a":`:         "unexpected EOF",
		`{"` + strings.Repeat("é", 200) + `":1}`: "unknown field",
	} {
		err := strictjson.Decode([]byte(body), &m)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: error %v, want one saying %q", body, err, want)
		}
		if err != nil && len(err.Error()) > 124 {
			t.Errorf("%.40q: error text of %d bytes, want it clipped", body, len(err.Error()))
		}
	}
	if err := strictjson.Decode([]byte(`{}{}`), &m); !errors.Is(err, strictjson.ErrTrailingData) {
		t.Errorf("trailing data: %v", err)
	}
}

func TestClipKeepsCharacters(t *testing.T) {
	s := strings.Repeat("é", 100) // 200 bytes
	c := strictjson.Clip(s)
	if !strings.HasSuffix(c, "…") || !strings.HasPrefix(s, strings.TrimSuffix(c, "…")) || len(c) > 123 {
		t.Errorf("clip %q", c)
	}
	if strictjson.Clip("short") != "short" {
		t.Error("a short text is kept")
	}
}
