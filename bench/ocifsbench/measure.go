package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// config is what measure needs, from run.sh's flags.
type config struct {
	ocifs, crane, self string // binaries
	ref                string // the pushed image
	work               string // scratch directory (caches, trees, images)
	repeat             int
	out                string // Markdown report
	commit             string
}

func parseConfig(args []string) (*config, error) {
	c := &config{}
	fl := flag.NewFlagSet("measure", flag.ContinueOnError)
	fl.StringVar(&c.ocifs, "ocifs", "", "ocifs binary")
	fl.StringVar(&c.crane, "crane", "", "crane binary")
	fl.StringVar(&c.ref, "ref", "", "image reference on the loopback registry")
	fl.StringVar(&c.work, "work", "", "scratch directory")
	fl.IntVar(&c.repeat, "repeat", 5, "repetitions (the median is reported)")
	fl.StringVar(&c.out, "out", "", "write the Markdown report here (default stdout)")
	fl.StringVar(&c.commit, "commit", "", "ocifs commit measured")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if c.ocifs == "" || c.crane == "" || c.ref == "" || c.work == "" || c.repeat < 1 {
		return nil, fmt.Errorf("measure needs -ocifs, -crane, -ref, -work and -repeat >= 1")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c.self = self
	return c, nil
}

// bench holds the run's paths and the samples gathered so far.
type bench struct {
	cfg      *config
	warm     string // ocifs cache filled once, used by warm builds and mounts
	compact  string // the same in --cache-mode compact (no unpacked copies)
	cold     string // ocifs cache emptied before each cold build
	extract  string // the extraction pipeline's tree
	mnt      string // mount point
	samples  map[string][]float64
	loads    []string
	commands map[string]string // metric -> command, for the report
	facts    map[string]string // bytes, entries, ...
}

func runMeasure(args []string) error {
	cfg, err := parseConfig(args)
	if err != nil {
		return err
	}
	os.Unsetenv("OCIFS_CACHE_MODE") // the default mode is measured unless named
	os.Unsetenv("OCIFS_CACHE_DIR")
	b := &bench{
		cfg: cfg, warm: filepath.Join(cfg.work, "cache-warm"), cold: filepath.Join(cfg.work, "cache-cold"),
		compact: filepath.Join(cfg.work, "cache-compact"),
		extract: filepath.Join(cfg.work, "extracted"), mnt: filepath.Join(cfg.work, "mnt"),
		samples: map[string][]float64{}, commands: map[string]string{}, facts: map[string]string{},
	}
	if err := b.prepare(); err != nil {
		return err
	}
	for i := 0; i < cfg.repeat; i++ {
		fmt.Fprintf(os.Stderr, "ocifsbench: repetition %d of %d (load %s)\n", i+1, cfg.repeat, loadavg())
		if err := b.repetition(i); err != nil {
			return fmt.Errorf("repetition %d: %w", i+1, err)
		}
	}
	if err := b.diskUse(); err != nil {
		return err
	}
	return b.report()
}

// prepare fills the warm cache and saves its merged tree (one warm build).
func (b *bench) prepare() error {
	os.MkdirAll(b.mnt, 0o755)
	if _, err := sh("%s --cache-dir %s pull %s", b.cfg.ocifs, b.warm, b.cfg.ref); err != nil {
		return err
	}
	out, err := sh("%s --cache-dir %s --debug build %s %s/warm.ext4 2>&1", b.cfg.ocifs, b.warm, b.cfg.ref, b.cfg.work)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "ran tool") {
			b.facts["tool: "+toolName(l)] = l
		}
	}
	_, err = sh("%s --cache-dir %s --cache-mode compact build %s %s/compact.ext4 && rm %s/compact.ext4",
		b.cfg.ocifs, b.compact, b.cfg.ref, b.cfg.work, b.cfg.work)
	return err
}

// toolName returns a debug log line's tool and its first argument,
// joined by "_" ("e2fsck_-fyD").
func toolName(logLine string) string {
	_, after, _ := strings.Cut(logLine, `cmd="`)
	f := strings.Fields(after)
	if len(f) > 1 {
		return f[0] + "_" + f[1]
	}
	return strings.TrimSuffix(after, `"`)
}

func (b *bench) repetition(i int) error {
	b.loads = append(b.loads, loadavg())
	steps := []func() error{b.decompressFloor, b.pipeline, b.coldBuild, b.warmBuild, b.mountAndWalk, b.compactMode}
	if i%2 == 1 { // alternate the order, so neither side always runs first
		steps = []func() error{b.compactMode, b.mountAndWalk, b.warmBuild, b.coldBuild, b.pipeline, b.decompressFloor}
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	b.loads = append(b.loads, loadavg())
	return nil
}

func (b *bench) add(metric string, v float64) { b.samples[metric] = append(b.samples[metric], v) }

// timed runs a shell command, records its wall time under metric and
// returns its standard output.
func (b *bench) timed(metric, format string, args ...any) (string, error) {
	cmd := fmt.Sprintf(format, args...)
	b.commands[metric] = cmd
	start := time.Now()
	out, err := sh("%s", cmd)
	b.add(metric, time.Since(start).Seconds())
	return out, err
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func parseFloat(s string) float64 {
	v, _ := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return v
}
