package main

import (
	"testing"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
)

// TestMain stops the dynalite server that tests share through dynalitetest.
func TestMain(m *testing.M) { dynalitetest.Main(m) }
