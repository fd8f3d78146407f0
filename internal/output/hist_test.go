package output

import (
	"encoding/json"
	"testing"
)

func TestLog2Hist(t *testing.T) {
	buckets := []uint64{1, 0, 4, 2, 0, 0}
	got := string(AppendLog2Hist(nil, buckets, "usecs"))
	want := "     usecs               : count    distribution\n" +
		"         0 -> 1          : 1        |**********                              |\n" +
		"         2 -> 3          : 0        |                                        |\n" +
		"         4 -> 7          : 4        |****************************************|\n" +
		"         8 -> 15         : 2        |********************                    |\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if s := AppendLog2Hist(nil, make([]uint64, 4), "usecs"); len(s) != 0 {
		t.Errorf("empty histogram printed %q", s)
	}

	var rows []struct{ Low, High, Count uint64 }
	js := AppendLog2JSON(nil, buckets)
	if err := json.Unmarshal(js, &rows); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	if len(rows) != 4 || rows[3] != (struct{ Low, High, Count uint64 }{8, 15, 2}) || rows[0].Low != 0 || rows[0].High != 1 {
		t.Errorf("got %s", js)
	}
}
