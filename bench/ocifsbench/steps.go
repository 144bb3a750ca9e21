package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/internal/testenv"
)

// findFormat prints every field find knows of a path (lstat, readlink).
const findFormat = `%p %i %m %M %n %U %G %s %b %T@ %A@ %C@ %y %l\n`

func sh(format string, args ...any) (string, error) {
	cmd := fmt.Sprintf(format, args...)
	out, err := exec.Command("bash", "-o", "pipefail", "-c", cmd).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return string(out), fmt.Errorf("%s: %w\n%s", cmd, err, msg)
	}
	return string(out), nil
}

// dropCaches empties the page, dentry and inode caches, then lets the
// kernel settle for half a second (write-back, FUSE forgets), the same
// for both sides.
func dropCaches() error {
	_, err := sh("sync && echo 3 > /proc/sys/vm/drop_caches && sleep 0.5")
	return err
}

// blobs returns the paths of the image's layer blobs in the warm cache.
func (b *bench) blobs() ([]string, error) {
	store, err := cache.Open(b.warm, cache.Options{})
	if err != nil {
		return nil, err
	}
	img, err := store.Get(context.Background(), b.cfg.ref, cache.PullOptions{})
	if err != nil {
		return nil, err
	}
	defer img.Close()
	var out []string
	for _, l := range img.Layers {
		out = append(out, filepath.Join(b.warm, "blobs", l.Digest.Algorithm, l.Digest.Hex))
	}
	return out, nil
}

// decompressFloor times decompressing every layer once.
func (b *bench) decompressFloor() error {
	blobs, err := b.blobs()
	if err != nil {
		return err
	}
	_, err = b.timed("floor_decompress", "gzip -dc %s > /dev/null", strings.Join(blobs, " "))
	return err
}

// pipeline times crane export | tar -x, then ocifs's builder over the
// extracted tree (whose mkfs phase alone is the floor).
func (b *bench) pipeline() error {
	os.RemoveAll(b.extract)
	if err := os.MkdirAll(b.extract, 0o755); err != nil {
		return err
	}
	if _, err := b.timed("pipeline_export_untar", "%s export %s - | tar -x --numeric-owner -C %s",
		b.cfg.crane, b.cfg.ref, b.extract); err != nil {
		return err
	}
	sh("sync")
	out := filepath.Join(b.cfg.work, "baseline.ext4")
	os.Remove(out)
	js, err := b.timed("baseline_builder", "%s mkfs -ref %s -cache %s %s %s", b.cfg.self, b.cfg.ref, b.warm, b.extract, out)
	if err != nil {
		return err
	}
	var phases map[string]float64
	if err := json.Unmarshal([]byte(js), &phases); err != nil {
		return fmt.Errorf("reading the builder's phases %q: %w", js, err)
	}
	for p, s := range phases {
		b.add("baseline_"+p, s)
	}
	b.commands["baseline_mkfs"] = "mkfs.ext4 -d EXTRACTED with ocifs's options (see below)"
	os.Remove(out)
	return nil
}

// coldBuild times a pull into an empty cache, then a build from an
// empty cache (pull included).
func (b *bench) coldBuild() error {
	os.RemoveAll(b.cold)
	if _, err := b.timed("ocifs_pull_cold", "%s --cache-dir %s pull %s", b.cfg.ocifs, b.cold, b.cfg.ref); err != nil {
		return err
	}
	os.RemoveAll(b.cold)
	out := filepath.Join(b.cfg.work, "cold.ext4")
	_, err := b.timed("ocifs_build_cold", "%s --cache-dir %s build %s %s", b.cfg.ocifs, b.cold, b.cfg.ref, out)
	os.Remove(out)
	return err
}

// warmBuild times a build from the filled cache, and its mkfs alone
// (from the debug log).
func (b *bench) warmBuild() error {
	out := filepath.Join(b.cfg.work, "warm.ext4")
	log := filepath.Join(b.cfg.work, "warm.log")
	os.Remove(out)
	_, err := b.timed("ocifs_build_warm", "%s --cache-dir %s --debug build %s %s 2>%s", b.cfg.ocifs, b.warm, b.cfg.ref, out, log)
	if err != nil {
		return err
	}
	data, _ := os.ReadFile(log)
	for _, l := range strings.Split(string(data), "\n") {
		if _, req, ok := strings.Cut(l, "requests="); ok && strings.Contains(l, "mount served mkfs") {
			b.facts["ocifs build: FUSE requests during mkfs (last run)"] = req
		}
		if !strings.Contains(l, "ran tool") {
			continue
		}
		_, e, _ := strings.Cut(l, "elapsed=")
		e, _, _ = strings.Cut(e, " ")
		if d, err := time.ParseDuration(e); err == nil {
			b.add("ocifs_warm_tool_"+toolName(l), d.Seconds())
		}
	}
	return nil
}

// mountAndWalk times a warm mount to its first stat, then the walks and
// reads of the mount and of the extracted tree (caches dropped before
// each), and records the server's peak RSS.
func (b *bench) mountAndWalk() error {
	start := time.Now()
	if err := exec.Command(b.cfg.ocifs, "--cache-dir", b.warm, "mount", b.cfg.ref, b.mnt).Run(); err != nil {
		return fmt.Errorf("mounting: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(b.mnt, "etc/os-release")); err != nil {
		return err
	}
	b.add("mount_first_stat", time.Since(start).Seconds())
	b.commands["mount_first_stat"] = fmt.Sprintf("%s --cache-dir %s mount %s %s && stat %s/etc/os-release",
		b.cfg.ocifs, b.warm, b.cfg.ref, b.mnt, b.mnt)
	defer exec.Command(b.cfg.ocifs, "umount", b.mnt).Run()
	order := [][2]string{{"mount", b.mnt}, {"extracted", b.extract}}
	if len(b.samples["walk_mount"])%2 == 1 {
		order[0], order[1] = order[1], order[0]
	}
	for _, o := range order {
		if err := b.walk(o[0], o[1]); err != nil {
			return err
		}
	}
	pid := testenv.MountServer(b.mnt)
	if pid == 0 {
		return fmt.Errorf("no mount server for %s", b.mnt)
	}
	hwm, _ := testenv.StatusKiB(pid, "VmHWM")
	b.add("server_vmhwm_mib", float64(hwm)/1024)
	return b.prefetchRead()
}

// prefetchRead times the full read over a mount made with --prefetch.
func (b *bench) prefetchRead() error {
	if err := exec.Command(b.cfg.ocifs, "umount", b.mnt).Run(); err != nil {
		return fmt.Errorf("unmounting: %w", err)
	}
	if err := exec.Command(b.cfg.ocifs, "--cache-dir", b.warm, "mount", "--prefetch", b.cfg.ref, b.mnt).Run(); err != nil {
		return fmt.Errorf("mounting with --prefetch: %w", err)
	}
	if err := dropCaches(); err != nil {
		return err
	}
	_, err := b.timed("read_mount_prefetch", "tar -cf - -C %s . | wc -c", b.mnt)
	return err
}

func (b *bench) walk(name, dir string) error {
	if err := dropCaches(); err != nil {
		return err
	}
	out, err := b.timed("walk_"+name, "find %s -printf '%s' | wc -l", dir, findFormat)
	if err != nil {
		return err
	}
	b.facts["paths_"+name] = strings.TrimSpace(out)
	if err := dropCaches(); err != nil {
		return err
	}
	out, err = b.timed("read_"+name, "tar -cf - -C %s . | wc -c", dir)
	if err != nil {
		return err
	}
	b.facts["tar_bytes_"+name] = strings.TrimSpace(out)
	return nil
}

// compactMode times a warm build and a full read with --cache-mode
// compact (layers read from their compressed blobs), for comparison with
// the default mode; no target applies.
func (b *bench) compactMode() error {
	out := filepath.Join(b.cfg.work, "compact.ext4")
	os.Remove(out)
	if _, err := b.timed("compact_build_warm", "%s --cache-dir %s --cache-mode compact build %s %s",
		b.cfg.ocifs, b.compact, b.cfg.ref, out); err != nil {
		return err
	}
	os.Remove(out)
	if err := exec.Command(b.cfg.ocifs, "--cache-dir", b.compact, "--cache-mode", "compact", "mount", b.cfg.ref, b.mnt).Run(); err != nil {
		return fmt.Errorf("mounting in compact mode: %w", err)
	}
	defer exec.Command(b.cfg.ocifs, "umount", b.mnt).Run()
	if err := dropCaches(); err != nil {
		return err
	}
	if _, err := b.timed("compact_read_mount", "tar -cf - -C %s . | wc -c", b.mnt); err != nil {
		return err
	}
	if pid := testenv.MountServer(b.mnt); pid != 0 {
		hwm, _ := testenv.StatusKiB(pid, "VmHWM")
		b.add("compact_server_vmhwm_mib", float64(hwm)/1024)
	}
	return nil
}

// diskUse records the warm cache's size, by part.
func (b *bench) diskUse() error {
	for _, part := range []string{".", "blobs", "ocifs/unpacked", "ocifs/index", "ocifs/trees"} {
		out, err := sh("du -sb %s | cut -f1", filepath.Join(b.warm, part))
		if err != nil {
			return err
		}
		b.facts["disk "+part] = strings.TrimSpace(out)
	}
	out, err := sh("du -sb %s | cut -f1", b.extract)
	if err != nil {
		return err
	}
	b.facts["disk extracted"] = strings.TrimSpace(out)
	if out, err = sh("du -sb %s | cut -f1", b.compact); err != nil {
		return err
	}
	b.facts["disk compact cache"] = strings.TrimSpace(out)
	return nil
}
