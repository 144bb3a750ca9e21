package testregistry

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestPushPull(t *testing.T) {
	r := Start(t)
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(r.Repo("busybox") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("pushing: %v", err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pulling: %v", err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled digest %s, pushed %s", d, want)
	}
}

func TestPrefixesDiffer(t *testing.T) {
	a, b := uniquePrefix(t), uniquePrefix(t)
	if a == b {
		t.Fatalf("two prefixes for one test are equal: %s", a)
	}
	valid := regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)
	if !valid.MatchString(a) || !strings.HasPrefix(a, "testprefixesdiffer-") {
		t.Fatalf("prefix %q is not a valid repository component", a)
	}
	r := &Registry{Addr: "127.0.0.1:1", prefix: a}
	if _, err := name.ParseReference(r.Repo("x/y") + ":t"); err != nil {
		t.Fatalf("Repo gives an unparseable reference: %v", err)
	}
}

func TestAuth(t *testing.T) {
	r := StartWithAuth(t, "alice", "s3cret")
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(r.Repo("private") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	err = remote.Write(ref, img)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous push: got %v, want a 401 transport error", err)
	}
	bad := remote.WithAuth(&authn.Basic{Username: "alice", Password: "wrong"})
	if err := remote.Write(ref, img, bad); err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	good := remote.WithAuth(&authn.Basic{Username: r.User, Password: r.Pass})
	if err := remote.Write(ref, img, good); err != nil {
		t.Fatalf("authenticated push: %v", err)
	}
	if _, err := remote.Image(ref); err == nil {
		t.Fatal("anonymous pull from an auth registry succeeded")
	}
	if _, err := remote.Image(ref, good); err != nil {
		t.Fatalf("authenticated pull: %v", err)
	}
}
