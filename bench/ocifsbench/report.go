package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) med(metric string) float64 { return median(b.samples[metric]) }

// target is one of issue 6's targets: a value, the bound and its sense.
type target struct {
	name, value string
	ok          bool
}

func (b *bench) targets() []target {
	pipeline := b.med("pipeline_export_untar") + b.med("baseline_mkfs")
	warm, cold := b.med("ocifs_build_warm"), b.med("ocifs_build_cold")
	entries, _ := strconv.Atoi(b.facts["paths_extracted"])
	rssMax := 64 + 200*float64(entries)/(1<<20)
	readRatio := b.med("read_extracted") / b.med("read_mount")
	return []target{
		ratio("warm build ≤ 0.6 × extraction pipeline", warm, pipeline, 0.6, true),
		ratio("warm build ≤ 1.5 × bare mkfs.ext4 -d", warm, b.med("baseline_mkfs"), 1.5, true),
		ratio("cold build ≤ 1.0 × extraction pipeline", cold, pipeline, 1.0, true),
		{"warm mount first stat ≤ 50 ms", fmt.Sprintf("%.1f ms", 1000*b.med("mount_first_stat")), b.med("mount_first_stat") <= 0.050},
		ratio("metadata walk ≤ 2 × extracted tree", b.med("walk_mount"), b.med("walk_extracted"), 2, true),
		{"full read ≥ 0.5 × extracted throughput", fmt.Sprintf("%.2f×", readRatio), readRatio >= 0.5},
		{fmt.Sprintf("server RSS ≤ 64 MiB + 200 B × %d entries = %.1f MiB", entries, rssMax),
			fmt.Sprintf("%.1f MiB", b.med("server_vmhwm_mib")), b.med("server_vmhwm_mib") <= rssMax},
	}
}

func ratio(name string, a, base, bound float64, le bool) target {
	r := a / base
	ok := r <= bound
	if !le {
		ok = r >= bound
	}
	return target{name, fmt.Sprintf("%.2f× (%.2f s / %.2f s)", r, a, base), ok}
}

func (b *bench) report() error {
	var w io.Writer = os.Stdout
	if b.cfg.out != "" {
		f, err := os.Create(b.cfg.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	fmt.Fprintf(w, "## Run of %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	b.machine(w)
	fmt.Fprintf(w, "\n### Targets (issue 6), medians of %d repetitions\n\n| target | measured | met |\n|---|---|---|\n", b.cfg.repeat)
	for _, t := range b.targets() {
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.name, t.value, map[bool]string{true: "yes", false: "**no**"}[t.ok])
	}
	b.table(w)
	b.factsSection(w)
	return nil
}

func (b *bench) machine(w io.Writer) {
	mem, _ := sh("awk '/MemTotal/{printf \"%%.1f GiB\", $2/1048576}' /proc/meminfo")
	cpu, _ := sh("awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo")
	kern, _ := sh("uname -r")
	fmt.Fprintf(w, "- machine: %d CPUs (%s), %s RAM, kernel %s\n", runtime.NumCPU(), strings.TrimSpace(cpu), mem, strings.TrimSpace(kern))
	fmt.Fprintf(w, "- load average (1, 5, 15 min) before and after each repetition: %s\n", strings.Join(b.loads, "; "))
	fmt.Fprintf(w, "- ocifs %s\n", b.cfg.commit)
	for _, v := range []string{
		"go version", "mkfs.ext4 -V 2>&1 | head -1", b.cfg.crane + " version",
		"tar --version | head -1", "gzip --version | head -1",
		"dpkg-query -W -f '${Package} ${Version}\n' docker-registry debootstrap fuse3",
	} {
		out, _ := sh("%s", v)
		fmt.Fprintf(w, "- %s\n", strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "))
	}
}

func (b *bench) table(w io.Writer) {
	fmt.Fprintf(w, "\n### All measurements (seconds unless named; median [min–max])\n\n| measurement | median | range |\n|---|---|---|\n")
	names := make([]string, 0, len(b.samples))
	for n := range b.samples {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := append([]float64(nil), b.samples[n]...)
		sort.Float64s(s)
		fmt.Fprintf(w, "| %s | %.3f | %.3f–%.3f |\n", n, median(s), s[0], s[len(s)-1])
	}
}

func (b *bench) factsSection(w io.Writer) {
	fmt.Fprintf(w, "\n### Sizes and commands\n\n")
	keys := make([]string, 0, len(b.facts))
	for k := range b.facts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "- %s: `%s`\n", k, b.facts[k])
	}
	cmds := make([]string, 0, len(b.commands))
	for k := range b.commands {
		cmds = append(cmds, k)
	}
	sort.Strings(cmds)
	for _, k := range cmds {
		fmt.Fprintf(w, "- %s: `%s`\n", k, b.commands[k])
	}
}
