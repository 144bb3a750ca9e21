package overlay

import (
	"fmt"
	"runtime"
	"testing"
)

// bigNames returns n paths spread over directories of 100 entries, two
// levels deep, like a large distribution image.
func bigNames(n int) []string {
	names := make([]string, 0, n)
	for d := 0; len(names) < n; d++ {
		dir := fmt.Sprintf("usr/share/d%04d", d)
		names = append(names, dir)
		for f := 0; f < 99 && len(names) < n; f++ {
			names = append(names, fmt.Sprintf("%s/file-%03d.txt", dir, f))
		}
	}
	return names
}

func bigLayer(names []string) *Layer {
	l := &Layer{Entries: make([]Entry, len(names))}
	for i, name := range names {
		e := Entry{Name: name, Type: TypeRegular, Mode: 0644, Size: int64(i), Offset: int64(i) * 1024}
		if i%100 == 0 {
			e.Type = TypeDir
			e.Mode = 0755
		}
		l.Entries[i] = e
	}
	return l
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// treeBytesPerEntry measures the heap a merged tree of n entries holds,
// beyond the names themselves (allocated before the measurement starts).
func treeBytesPerEntry(n int) float64 {
	names := bigNames(n)
	before := heapInUse()
	tr, err := Merge([]*Layer{bigLayer(names)})
	if err != nil {
		panic(err)
	}
	after := heapInUse()
	runtime.KeepAlive(tr)
	runtime.KeepAlive(names)
	return float64(after-before) / float64(n)
}

// TestTreeMemory holds the tree to its budget: at most 200 bytes per entry
// beyond the names, for 100,000 entries.
func TestTreeMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement skipped in -short mode")
	}
	per := treeBytesPerEntry(100_000)
	t.Logf("merged tree: %.0f bytes per entry beyond names", per)
	if per > 200 {
		t.Errorf("merged tree costs %.0f bytes per entry; budget 200", per)
	}
}

func BenchmarkMerge(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			l := []*Layer{bigLayer(bigNames(n))}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Merge(l); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(treeBytesPerEntry(n), "tree-B/entry")
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	names := bigNames(100_000)
	tr, _ := Merge([]*Layer{bigLayer(names)})
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if tr.Get(names[i%len(names)]) == nil {
			b.Fatal("missing")
		}
		i += 7919
	}
}

// BenchmarkUnmarshalTree measures what a warm mount pays instead of
// loading indexes and merging.
func BenchmarkUnmarshalTree(b *testing.B) {
	tr, err := Merge([]*Layer{bigLayer(bigNames(100_000))})
	if err != nil {
		b.Fatal(err)
	}
	data := tr.MarshalBinary(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalTree(data, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data))/100_000, "file-B/entry")
}
