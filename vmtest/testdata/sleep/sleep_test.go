// Package sleep is a vmtest fixture that never finishes in time.
package sleep

import (
	"testing"
	"time"
)

func TestSleeps(t *testing.T) {
	t.Log("sleeping")
	time.Sleep(time.Hour)
}
