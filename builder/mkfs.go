package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ocifs/ocifs/overlay"
)

// features is every ext4 feature the image has, all given to mke2fs
// explicitly after "none", so the host's mke2fs.conf adds nothing. They
// are what Linux has mounted since 3.18 (metadata_csum) and what guest
// kernels of Firecracker-style VMs are built with. Left out on purpose:
// resize_inode (the image is built at its size; resize2fs grows it
// offline without), orphan_file and metadata_csum_seed (too new for some
// guest kernels), inline_data, large_dir, ea_inode, quota, project,
// casefold, encrypt, verity, bigalloc, meta_bg, sparse_super2, mmp.
var features = []string{
	"ext_attr", "dir_index", "filetype", "extent", "64bit", "flex_bg",
	"sparse_super", "large_file", "huge_file", "dir_nlink", "extra_isize",
	"metadata_csum",
}

// usageType names the mke2fs.conf section Build writes, so mke2fs finds
// nothing of the host's and prints no warning about missing types.
const usageType = "ocifs"

// mke2fsConf is the whole mke2fs.conf the build runs with
// (MKE2FS_CONFIG): it pins every default the command line does not.
func mke2fsConf(journal bool) string {
	fs := strings.Join(featureList(journal), ",")
	return `[defaults]
	base_features = ` + fs + `
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 0
	enable_periodic_fsck = false
	lazy_itable_init = false
	lazy_journal_init = false
	default_mntopts = acl,user_xattr
	hash_alg = half_md4
	errors = remount-ro

[fs_types]
	ext4 = {
		features = ` + fs + `
	}
	` + usageType + ` = {
		inode_size = 256
	}
`
}

// e2fsckConf pins the options of e2fsck that change what -D writes.
const e2fsckConf = `[options]
	indexed_dir_slack_percentage = 20
`

func featureList(journal bool) []string {
	fs := append([]string{}, features...)
	if journal {
		fs = append([]string{"has_journal"}, fs...)
	}
	return fs
}

// mkfsArgs is mke2fs's command line: every parameter explicit.
func mkfsArgs(l *Layout, root *overlay.Node, src, img, uuid, hashSeed, label string) []string {
	args := []string{
		"-F", "-q",
		"-t", "ext4", "-T", usageType,
		"-b", fmt.Sprint(blockSize), "-I", fmt.Sprint(inodeSize),
		"-m", "0",
		"-g", fmt.Sprint(l.BlocksPerGroup),
		"-N", fmt.Sprint(l.Inodes),
		"-O", "none," + strings.Join(featureList(l.Journal > 0), ","),
		"-E", strings.Join([]string{
			fmt.Sprintf("root_owner=%d:%d", root.UID(), root.GID()),
			"hash_seed=" + hashSeed,
			"nodiscard",
			"lazy_itable_init=0",
			"lazy_journal_init=0",
		}, ","),
		"-e", "remount-ro",
		"-U", uuid,
	}
	if l.Journal > 0 {
		args = append(args, "-J", fmt.Sprintf("size=%d", l.Journal*blockSize>>20))
	}
	if label != "" {
		args = append(args, "-L", label)
	}
	return append(args, "-d", src, img, fmt.Sprint(l.Blocks))
}

func writeFile(dir, name, content string) (string, error) {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	return p, nil
}
