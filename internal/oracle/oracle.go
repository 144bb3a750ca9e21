package oracle

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
)

// unpackTimeout bounds one umoci run; images in tests are small.
const unpackTimeout = 5 * time.Minute

// UmociUnpack unpacks the image tagged tag in the OCI layout at layoutDir
// with the real `umoci unpack`, as root, and returns the root filesystem
// directory (inside t.TempDir()). It skips (or fails under strict mode)
// without root or umoci, and fails the test if umoci fails.
func UmociUnpack(t testing.TB, layoutDir, tag string) string {
	t.Helper()
	testenv.RequireRoot(t)
	umoci := testenv.RequireTool(t, "umoci", "apt-get install -y umoci")
	bundle := filepath.Join(t.TempDir(), "bundle")
	if err := Unpack(context.Background(), umoci, layoutDir, tag, bundle); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(bundle, "rootfs")
}

// Unpack runs `umoci unpack --image layoutDir:tag bundle` and returns
// umoci's output in the error if it fails. bundle must not exist.
func Unpack(ctx context.Context, umoci, layoutDir, tag, bundle string) error {
	ctx, cancel := context.WithTimeout(ctx, unpackTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, umoci, "unpack", "--image", layoutDir+":"+tag, bundle)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running umoci unpack --image %s:%s: %w\n%s", layoutDir, tag, err, out.String())
	}
	return nil
}
