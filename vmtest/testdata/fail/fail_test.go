// Package fail is a vmtest fixture whose test fails.
package fail

import (
	"os"
	"testing"
)

func TestFails(t *testing.T) {
	t.Log("about to fail")
	if code := os.Getenv("BPFKIT_FIXTURE_EXIT"); code == "3" {
		os.Exit(3)
	}
	t.Fatal("this test fails on purpose")
}

func TestSkips(t *testing.T) { t.Skip("skipped on purpose") }

func TestPasses(t *testing.T) {}
