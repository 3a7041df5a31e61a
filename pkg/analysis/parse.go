package analysis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// answerField is one member of an answer's top-level object as far as it
// arrived: a value decoded whole, or, for an array, every element that
// decoded whole (an answer cut off inside the array keeps those).
type answerField struct {
	value json.RawMessage
	// elems are the elements of an array member.
	elems   []json.RawMessage
	isArray bool
	// complete: the value (every element of an array) arrived whole.
	complete bool
}

// walk reads an answer's top-level JSON object member by member and keeps
// what decoded whole: a valid part of an answer is never thrown away
// because another part is faulty or the answer was cut off. Problems that
// belong to no part (not an object, duplicate or trailing data, a cut)
// are returned in words fit for a repair request.
func walk(content []byte) (map[string]*answerField, []string) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	members := map[string]*answerField{}
	switch {
	case len(content) > MaxAnswerBytes:
		add("the answer is longer than %d bytes", MaxAnswerBytes)
		return members, problems
	case !utf8.Valid(content):
		add("the answer is not valid UTF-8")
		return members, problems
	}
	dec := json.NewDecoder(bytes.NewReader(content))
	cut := func(err error) {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			add("the answer is cut off: it is not one complete JSON object")
			return
		}
		add("the answer is not one JSON object of the required schema: %s", clipErr(err))
	}
	tok, err := dec.Token()
	if err != nil {
		cut(err)
		return members, problems
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		add("the answer is not one JSON object of the required schema")
		return members, problems
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			cut(err)
			return members, problems
		}
		name, _ := tok.(string)
		m := &answerField{}
		if _, dup := members[name]; dup {
			add("field %s appears more than once", quote(name, 30))
			m = &answerField{} // the later one is read and dropped
		} else {
			members[name] = m
		}
		if err := readValue(dec, content, m); err != nil {
			cut(err)
			return members, problems
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		cut(err)
		return members, problems
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		add("unexpected data after the JSON object")
	}
	return members, problems
}

// readValue reads one member's value into m. An array is then read again
// element by element from where it starts, so that a value cut off inside
// it keeps the elements that arrived whole.
func readValue(dec *json.Decoder, content []byte, m *answerField) error {
	at := dec.InputOffset()
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if err == nil && (len(raw) == 0 || raw[0] != '[') {
		m.value, m.complete = raw, true
		return nil
	}
	rest := bytes.TrimLeft(content[at:], " \t\r\n:")
	if len(rest) == 0 || rest[0] != '[' {
		return err
	}
	m.isArray = true
	arr := json.NewDecoder(bytes.NewReader(rest))
	if _, aerr := arr.Token(); aerr != nil {
		return aerr
	}
	for arr.More() {
		var e json.RawMessage
		if derr := arr.Decode(&e); derr != nil {
			return derr
		}
		m.elems = append(m.elems, e)
	}
	if _, aerr := arr.Token(); aerr != nil {
		return aerr
	}
	m.complete = err == nil
	return err
}

// raw is a member's value, or nil when it is absent or incomplete.
func (m *answerField) raw() json.RawMessage {
	if m == nil || !m.complete || m.isArray {
		return nil
	}
	return m.value
}

func clipErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = ToValidUTF8Prefix(s, 120) + "…"
	}
	return s
}
