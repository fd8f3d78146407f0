package execsnoop

import (
	"testing"

	"github.com/bpfkit/bpfkit/pkg/loader/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestLoadSmoke(t *testing.T) {
	testkit.RequireRoot(t)
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	xt, err := NewExit(ExitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	xt.Close()
}
