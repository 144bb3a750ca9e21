package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The helpers call t.Skip/t.Fatal, so their outcome is observed in a child
// test process, run with and without strict mode.
func TestMissingSkipsOrFails(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		RequireTool(t, "ocifs-no-such-tool-xyz", "apt-get install -y nothing")
		t.Log("reached after RequireTool")
		return
	}
	for _, tc := range []struct {
		strict   string
		wantFail bool
		want     string
	}{
		{"", false, "--- SKIP"},
		{"1", true, "--- FAIL"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingSkipsOrFails$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", StrictEnv+"="+tc.strict)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail {
			t.Errorf("strict=%q: err=%v, want failure=%v\n%s", tc.strict, err, tc.wantFail, out)
		}
		s := string(out)
		if !strings.Contains(s, tc.want) || !strings.Contains(s, "apt-get install -y nothing") {
			t.Errorf("strict=%q: output lacks %q or the install hint:\n%s", tc.strict, tc.want, s)
		}
		if strings.Contains(s, "reached after RequireTool") {
			t.Errorf("strict=%q: test went on after a missing tool:\n%s", tc.strict, s)
		}
	}
}

func TestRequireToolFindsSh(t *testing.T) {
	if p := RequireTool(t, "sh", "install a shell"); !strings.HasSuffix(p, "/sh") {
		t.Fatalf("RequireTool(sh) = %q", p)
	}
}

func TestStrict(t *testing.T) {
	t.Setenv(StrictEnv, "1")
	if !Strict() {
		t.Fatal("Strict() = false with OCIFS_TEST_STRICT=1")
	}
	t.Setenv(StrictEnv, "0")
	if Strict() {
		t.Fatal("Strict() = true with OCIFS_TEST_STRICT=0")
	}
}

func TestRequireUnprivilegedFUSE(t *testing.T) {
	RequireUnprivilegedFUSE(t)
	st, err := os.Stat(FUSEDevice)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o006 != 0o006 {
		t.Fatalf("%s is %v after RequireUnprivilegedFUSE", FUSEDevice, st.Mode().Perm())
	}
}
