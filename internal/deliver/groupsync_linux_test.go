package deliver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkGroupSync measures the ways of making a group of new files
// durable before they are renamed from tmp/ into new/, which is what
// chose the strategy of MaildirBatch.Flush:
//
//   - each: what Maildir.Deliver does, per message: write, fsync, close,
//     rename, fsync new/;
//   - fdatasync: write every file, then fdatasync each, rename each, fsync
//     new/ once;
//   - sfr: write every file and start its writeback at once
//     (sync_file_range SYNC_FILE_RANGE_WRITE), then fdatasync each,
//     rename each, fsync new/ once;
//   - none: no sync at all, for reference: write, close, rename;
//   - syncfs: write and close every file, then one syncfs of the file
//     system, rename each, fsync new/ once.
//
// The directory is $UNIMAIL_SYNC_BENCH_DIR, or the test's temporary
// directory; run it on the file system that matters:
//
//	UNIMAIL_SYNC_BENCH_DIR=/var/tmp go test -run '^$' -bench GroupSync -benchtime 20x ./internal/deliver
//
// (a fixed count: every file stays until the end of its case)
//
// ns/msg is the time per message, whole group included.
func BenchmarkGroupSync(b *testing.B) {
	base := os.Getenv("UNIMAIL_SYNC_BENCH_DIR")
	if base == "" {
		base = b.TempDir()
	}
	msg := make([]byte, 3900)
	for i := range msg {
		msg[i] = byte('a' + i%26)
	}
	for _, group := range []int{64, 256, 1024} {
		for _, strategy := range []string{"none", "each", "fdatasync", "sfr", "syncfs"} {
			b.Run(fmt.Sprintf("%s/group=%d", strategy, group), func(b *testing.B) {
				dir, err := os.MkdirTemp(base, "groupsync-")
				if err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(dir)
				if err := makeDirs(dir); err != nil {
					b.Fatal(err)
				}
				tmp, err := os.Open(filepath.Join(dir, "tmp"))
				if err != nil {
					b.Fatal(err)
				}
				defer tmp.Close()
				nd, err := os.Open(filepath.Join(dir, "new"))
				if err != nil {
					b.Fatal(err)
				}
				defer nd.Close()
				tfd, nfd := int(tmp.Fd()), int(nd.Fd())
				seq := 0
				check := func(err error) {
					if err != nil {
						b.Fatal(err)
					}
				}
				create := func() (int, string) {
					seq++
					name := strconv.Itoa(seq)
					fd, err := unix.Openat(tfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
					check(err)
					_, err = unix.Write(fd, msg)
					check(err)
					return fd, name
				}
				publish := func(names []string) {
					for _, name := range names {
						check(unix.Renameat(tfd, name, nfd, name))
					}
					check(unix.Fsync(nfd))
				}
				b.ResetTimer()
				for b.Loop() {
					names := make([]string, 0, group)
					fds := make([]int, 0, group)
					switch strategy {
					case "each":
						for range group {
							fd, name := create()
							check(unix.Fsync(fd))
							check(unix.Close(fd))
							publish([]string{name})
						}
					case "fdatasync", "sfr":
						for range group {
							fd, name := create()
							if strategy == "sfr" {
								check(unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE))
							}
							fds, names = append(fds, fd), append(names, name)
						}
						for _, fd := range fds {
							check(unix.Fdatasync(fd))
							check(unix.Close(fd))
						}
						publish(names)
					case "none":
						for range group {
							fd, name := create()
							check(unix.Close(fd))
							names = append(names, name)
						}
						for _, name := range names {
							check(unix.Renameat(tfd, name, nfd, name))
						}
					case "syncfs":
						for range group {
							fd, name := create()
							check(unix.Close(fd))
							names = append(names, name)
						}
						check(unix.Syncfs(tfd))
						publish(names)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*group), "ns/msg")
			})
		}
	}
}
