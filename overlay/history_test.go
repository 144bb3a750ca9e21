package overlay

import (
	"fmt"
	"strings"
	"testing"
)

func TestHistory(t *testing.T) {
	s := stack{
		/* 0 */ tarOf(dir("etc"), file("etc/motd", "hi"), dir("d"), file("d/x", "x"), file("f", "f")),
		/* 1 */ tarOf(file("etc/motd", "hello"), dir("d", mode(0700))),
		/* 2 */ tarOf(whiteout("etc/motd"), opaque("d")),
		/* 3 */ tarOf(file("etc/motd", "back"), whiteout("d"), file("d", "now a file")),
		/* 4 */ tarOf(whiteout("f"), dir("f"), file("g/h", "h"), hardlink("link", "etc/motd")),
		/* 5 */ tarOf(symlink("g/h", "elsewhere"), file("g", "file")),
	}
	tests := []struct {
		path string
		want string
	}{
		{"etc/motd", "0 created etc/motd; 1 modified etc/motd; 2 whited out by etc/.wh.motd; 3 created etc/motd"},
		{"d", "0 created d; 1 changed d; 3 whited out by .wh.d; 3 created d"},
		{"d/x", "0 created d/x; 2 hidden by d/.wh..wh..opq"},
		{"f", "0 created f; 4 whited out by .wh.f; 4 created f"},
		{"g", "4 created -; 5 replaced g"},
		{"g/h", "4 created g/h; 5 hidden by g"},
		{"link", "4 created link"},
		{"never", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			ev, err := History(s.layers(), tc.path)
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, e := range ev {
				x := fmt.Sprintf("%d %s", e.Layer, e.Kind)
				if e.By != "" {
					x += " by " + e.By
				} else if e.Entry != nil {
					x += " " + e.Entry.Name
				} else {
					x += " -"
				}
				parts = append(parts, x)
			}
			if got := strings.Join(parts, "; "); got != tc.want {
				t.Errorf("history of %s:\n got  %s\n want %s", tc.path, got, tc.want)
			}
		})
	}
}

func TestHistoryErrors(t *testing.T) {
	if _, err := History(stack{tarOf(file("a", "1"))}.layers(), "../x"); err == nil || !strings.Contains(err.Error(), `path "../x"`) {
		t.Errorf("a path escaping the root must be an error naming it: %v", err)
	}
	if _, err := History(stack{tarOf(file("../a", "1"))}.layers(), "a"); err == nil {
		t.Error("History must fail where Merge fails")
	}
}
