// Package config parses the service's environment variables, once at cold
// start, into one typed struct per function. A missing or malformed variable
// is an error of one line that names it. The variables are listed in
// .env.example and set by the stack (infra/functions.go).
package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/logging"
)

// Lookup reads one variable; os.LookupEnv in production, a map in tests.
type Lookup func(key string) (string, bool)

// Env collects the first error while reading variables, so a loader reads
// straight through and reports one line.
type Env struct {
	lookup Lookup
	err    error
}

// NewEnv returns a reader over lookup.
func NewEnv(lookup Lookup) *Env { return &Env{lookup: lookup} }

// Err is the first problem found, or nil.
func (e *Env) Err() error { return e.err }

func (e *Env) fail(key, format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("configuration: %s %s", key, fmt.Sprintf(format, args...))
	}
}

func (e *Env) get(key string) (string, bool) {
	v, ok := e.lookup(key)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// Optional returns the variable or "" when unset.
func (e *Env) Optional(key string) string { v, _ := e.get(key); return v }

// String returns the variable, or def when unset.
func (e *Env) String(key, def string) string {
	if v, ok := e.get(key); ok {
		return v
	}
	return def
}

// Required returns the variable; unset or empty is an error.
func (e *Env) Required(key string) string {
	v, ok := e.get(key)
	if !ok {
		e.fail(key, "is required but not set")
	}
	return v
}

// Int returns the variable as an integer within [min, max], or def when unset.
func (e *Env) Int(key string, def, min, max int) int {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail(key, "must be an integer, got %q", v)
		return def
	}
	if n < min || n > max {
		e.fail(key, "must be between %d and %d, got %d", min, max, n)
		return def
	}
	return n
}

// Duration returns the variable as a Go duration (e.g. "30s") within
// [min, max], or def when unset.
func (e *Env) Duration(key string, def, min, max time.Duration) time.Duration {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(key, "must be a duration such as 30s, got %q", v)
		return def
	}
	if d < min || d > max {
		e.fail(key, "must be between %s and %s, got %s", min, max, d)
		return def
	}
	return d
}

// URL returns the variable as an absolute http(s) URL, or def when unset.
func (e *Env) URL(key, def string) string {
	v, ok := e.get(key)
	if !ok {
		v = def
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if strings.ContainsAny(v, "?@") {
			// A query or user info may hold a key: not echoed into the log.
			e.fail(key, "must be an absolute http(s) URL without credentials or a query string")
		} else {
			e.fail(key, "must be an absolute http(s) URL, got %q", v)
		}
		return def
	}
	if u.User != nil || u.RawQuery != "" {
		e.fail(key, "must not carry credentials or a query string")
		return def
	}
	return strings.TrimRight(v, "/")
}

// OneOf returns the variable if it is one of allowed, or def when unset.
func (e *Env) OneOf(key, def string, allowed ...string) string {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.fail(key, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	return def
}

// LogLevel reads deploy.VarLogLevel: debug, info, warn or error, in any case
// (default info).
func (e *Env) LogLevel() slog.Level {
	raw := e.Optional(deploy.EnvLogLevel)
	level, err := logging.ParseLevel(raw) // any case, as slog's names
	if err != nil {
		e.fail(deploy.EnvLogLevel, "must be one of %s, got %q", strings.Join(deploy.VarLogLevel.Values, ", "), raw)
		return slog.LevelInfo
	}
	return level
}

// Reading the contract's variables (deploy.Var): their defaults and bounds
// are the contract's, so a function, the stack and the docs cannot disagree.
// The contract's own values are checked by its tests (TestContractValues),
// so a default or a bound that does not parse reads as zero here.

// VarString reads a string variable: its value, or its default when unset;
// unset and required is an error.
func (e *Env) VarString(v deploy.Var) string {
	if v.Required {
		return e.Required(v.Name)
	}
	return e.String(v.Name, v.Default)
}

// VarInt reads an integer variable within the contract's bounds.
func (e *Env) VarInt(v deploy.Var) int {
	return e.Int(v.Name, atoi(v.Default), atoi(v.Min), atoi(v.Max))
}

// VarDuration reads a duration variable within the contract's bounds; def
// applies when the contract gives no default (a default derived from other
// settings).
func (e *Env) VarDuration(v deploy.Var, def time.Duration) time.Duration {
	if v.Default != "" {
		def = parseDuration(v.Default)
	}
	return e.Duration(v.Name, def, parseDuration(v.Min), parseDuration(v.Max))
}

// VarURL reads a URL variable; unset and required is an error, unset and
// without a default is "".
func (e *Env) VarURL(v deploy.Var) string {
	if v.Default == "" {
		if raw := e.VarString(v); raw == "" {
			return ""
		}
	}
	return e.URL(v.Name, v.Default)
}

// VarEnum reads an enum variable: one of the contract's values.
func (e *Env) VarEnum(v deploy.Var) string {
	return e.OneOf(v.Name, v.Default, v.Values...)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func parseDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}
