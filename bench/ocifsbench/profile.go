package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime/pprof"
	"time"

	"github.com/ocifs/ocifs/builder"
	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/fusefs"
)

// runProfile builds REF from the cache as `ocifs build` does, but in this
// process, so that the server can be profiled while mkfs.ext4 -d reads
// the mount: it prints the phases' times and the FUSE requests by kind,
// and writes a CPU profile of the whole build with -cpuprofile. With
// -hold it leaves the mount up for that long after mounting, for strace
// of a mkfs run by hand.
func runProfile(args []string) error {
	fl := flag.NewFlagSet("profile", flag.ContinueOnError)
	ref := fl.String("ref", "", "image reference, cached in -cache")
	dir := fl.String("cache", "", "ocifs cache directory")
	cpu := fl.String("cpuprofile", "", "write a CPU profile here")
	out := fl.String("out", "", "output image (default: a temporary file)")
	prefetch := fl.Bool("prefetch", false, "mount with fusefs.Options.Prefetch")
	pullOnly := fl.Bool("pull", false, "only pull REF into -cache (which should be empty), profiled")
	ahead := fl.Bool("ahead", true, "build: decode compressed layers ahead of mkfs (cache.Image.DecodeAhead), as ocifs build does")
	warm := fl.Bool("warm", false, "walk the mount ahead of mkfs (fusefs.WarmWalk, in process: profiling only), beside it")
	warmFirst := fl.Bool("warmfirst", false, "with -cmd: walk the mount before running the command, timed alone")
	command := fl.String("cmd", "", "instead of building, run this shell command with $MNT set to the mount")
	modeName := fl.String("mode", "unpacked", "cache mode: unpacked or compact (compact: a 256 MiB span cache, as ocifs build uses)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *ref == "" || *dir == "" {
		return fmt.Errorf("profile takes -ref REF -cache DIR")
	}
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	t0 := time.Now()
	ctx := context.Background()
	mode, err := cache.ParseMode(*modeName)
	if err != nil {
		return err
	}
	store, err := cache.Open(*dir, cache.Options{Mode: mode, SpanCache: 256 << 20})
	if err != nil {
		return err
	}
	if *pullOnly {
		img, err := store.Pull(ctx, *ref, cache.PullOptions{})
		if err != nil {
			return err
		}
		fmt.Printf("pulled %s in %v\n", img.Digest, time.Since(t0))
		return img.Close()
	}
	img, err := store.Get(ctx, *ref, cache.PullOptions{})
	if err != nil {
		return err
	}
	defer img.Close()
	tree, err := img.Tree(ctx, 0)
	if err != nil {
		return err
	}
	t1 := time.Now()
	mnt, err := os.MkdirTemp("", "ocifsbench-mnt-")
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	srv, err := fusefs.Mount(mnt, tree, img, fusefs.Options{Prefetch: *prefetch, SelfAccess: true})
	if err != nil {
		return err
	}
	t2 := time.Now()
	if *command != "" {
		if *warmFirst { // before the command, timed alone
			start := time.Now()
			if err := fusefs.WarmWalk(ctx, srv.Dir()); err != nil {
				return err
			}
			fmt.Printf("warm: %v, %s\n", time.Since(start), srv.Stats())
		}
		if *warm { // beside the command, as ocifs build does
			wctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { fusefs.WarmWalk(wctx, srv.Dir()); close(done) }()
			defer func() { stop(); <-done }()
		}
		return runOnMount(srv, mnt, *command)
	}
	if *out == "" {
		tmp, err := os.MkdirTemp("", "ocifsbench-out-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*out = tmp + "/image.ext4"
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	wctx, stopWarm := context.WithCancel(ctx)
	warmed := make(chan error, 1)
	go func() {
		if *warm {
			warmed <- fusefs.WarmWalk(wctx, srv.Dir())
		} else {
			warmed <- nil
		}
	}()
	stopAhead := func() {}
	if *ahead {
		stopAhead = img.DecodeAhead(tree)
	}
	res, err := builder.Build(ctx, tree, mnt, *out, builder.Options{
		Seed: img.Digest.String(), Headroom: builder.DefaultHeadroom, Logger: log,
	})
	stopAhead()
	stopWarm()
	<-warmed
	t3 := time.Now()
	stats := srv.Stats()
	if uerr := srv.Unmount(); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("open+tree %v, mount %v, build %v (%v), unmount %v\n",
		t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), res.Elapsed, time.Since(t3))
	fmt.Printf("requests: %s\n", stats)
	fmt.Println(store.SpanStats())
	return nil
}

// runOnMount runs a shell command against the mount and reports its time
// and the requests it caused.
func runOnMount(srv *fusefs.Server, mnt, command string) error {
	cmd := exec.Command("bash", "-c", command)
	cmd.Env = append(os.Environ(), "MNT="+mnt)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	stats := srv.Stats()
	if uerr := srv.Unmount(); err == nil {
		err = uerr
	}
	fmt.Printf("%s: %v\nrequests: %s\n", command, took, stats)
	return err
}
