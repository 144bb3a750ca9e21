package builder

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/ocifs/ocifs/overlay"
)

// fixup corrects with debugfs what mkfs.ext4 -d does not copy: the root
// directory's mode and times, and hardlinked symlinks (mkfs copies each
// path of one as a symlink of its own). It then reads the root's mode
// back.
func (b *build) fixup(ctx context.Context) error {
	root := b.tree.Root()
	script := rootCommands(root) + b.symlinkCommands() + "stat /\n"
	cmds, err := writeFile(b.work, "fixup.debugfs", script)
	if err != nil {
		return err
	}
	out, err := b.r.run(ctx, b.tools.Debugfs, "-w", "-f", cmds, b.img)
	if err != nil {
		return err
	}
	if msg := summarize(out.stderr, 6); out.code != 0 || msg != "" {
		return &ToolError{Tool: "debugfs", Code: out.code, Stderr: msg}
	}
	want := fmt.Sprintf("Mode:  0%o", root.Mode()&0o7777)
	if m := modeRE.FindString(out.stdout); m != want {
		return fmt.Errorf("setting the root directory's mode: debugfs shows %q, want %q", m, want)
	}
	return nil
}

var modeRE = regexp.MustCompile(`Mode:\s+0[0-7]+`)

// rootCommands are the debugfs requests that give the root directory the
// tree's mode and times (root_owner sets the owner; mke2fs copies the
// root's xattrs itself).
func rootCommands(root *overlay.Node) string {
	sec, _ := root.MTimeUnix()
	t := fmt.Sprintf("@%d", sec)
	return fmt.Sprintf("sif / mode 0%o\nsif / mtime %s\nsif / atime %s\nsif / ctime %s\n",
		0o040000|root.Mode()&0o7777, t, t, t)
}

// symlinkCommands turns the copies mkfs.ext4 -d made of a hardlinked
// symlink back into links to its first path: remove each copy (freeing
// its inode), link the name to the first path's inode, and set the link
// count (debugfs ln leaves counts alone).
func (b *build) symlinkCommands() string {
	var sb strings.Builder
	for _, paths := range symlinkGroups(b.tree) {
		if !quotable(paths) {
			b.r.log.Warn("cannot relink a hardlinked symlink whose name has a newline or NUL; its paths stay separate symlinks",
				"paths", paths)
			continue
		}
		first := quote(paths[0])
		for _, p := range paths[1:] {
			fmt.Fprintf(&sb, "rm %s\nln %s %s\n", quote(p), first, quote(p))
		}
		fmt.Fprintf(&sb, "sif %s links_count %d\n", first, len(paths))
	}
	return sb.String()
}

// symlinkGroups returns the paths of every symlink with more than one,
// in walk order.
func symlinkGroups(t *overlay.Tree) [][]string {
	groups := map[uint64]int{}
	var out [][]string
	for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno+t.Len()); ino++ {
		if n := t.Node(ino); n.Type() == overlay.TypeSymlink && n.Nlink() > 1 {
			groups[ino] = -1
		}
	}
	if len(groups) == 0 {
		return nil
	}
	t.Walk(func(p string, n *overlay.Node) error {
		i, ok := groups[n.Ino()]
		if !ok {
			return nil
		}
		if i < 0 {
			i = len(out)
			groups[n.Ino()] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], "/"+p)
		return nil
	})
	return out
}

// quote makes a path one argument of a debugfs command: in double
// quotes, a double quote doubled.
func quote(p string) string {
	return `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
}

func quotable(paths []string) bool {
	for _, p := range paths {
		if strings.ContainsAny(p, "\n\x00") {
			return false
		}
	}
	return true
}
