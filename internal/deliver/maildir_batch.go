package deliver

import (
	"io"
	"path/filepath"
	"slices"
	"sync"
)

// MaildirBatch delivers into a Maildir in groups (group commit), for a
// program that can wait for a whole group to be durable before it counts
// any of its messages as delivered, as a mailaccess.Fetcher with a Flush
// does. Add writes a message into tmp/ and does not make it durable;
// Flush makes every message added since the last Flush durable at once,
// then renames them into new/ and fsyncs new/ once. A message appears in
// new/ only once it is durable.
//
// What a group costs: on Linux 5.8 and later, Add is a create, a write
// per 256 KiB and a close, and Flush one syncfs of the Maildir's file
// system, a rename per message and one fsync of new/ (syncfs was the
// fastest of fdatasync per file, sync_file_range then fdatasync, and
// syncfs: see BenchmarkGroupSync). The price of syncfs is that it also
// writes out whatever else is dirty on that file system. On older Linux
// kernels (whose syncfs does not report write errors) and elsewhere, Add
// fsyncs each file, and Flush renames the group and fsyncs new/ once.
//
// A Flush that fails leaves nothing of its group in new/ (what it had
// renamed is removed again) and removes the group's files from tmp/: the
// caller counts none of the group as delivered, and delivers it again
// later. A crash or a kill before a Flush leaves the group's files in
// tmp/ only, where Maildir readers do not look (the Maildir convention is
// that tmp/ files older than 36 hours may be removed); a crash during a
// Flush may leave some of its messages in new/, durable, without the
// caller having counted them: the caller delivers them again, so they
// come twice. Discard drops a group without publishing it.
//
// A MaildirBatch may be used by several goroutines at once: a Flush
// takes the messages whose Add returned before it was called. Separate
// batches on one Maildir are separate groups.
type MaildirBatch struct {
	m       *Maildir
	mu      sync.Mutex
	pending []staged
}

// staged is a message file written into tmp/, waiting for its Flush, with
// the reference to the directories it was written in.
type staged struct {
	d    *dirs
	name string
}

// Batch returns a new, empty group of deliveries into m.
func (m *Maildir) Batch() *MaildirBatch { return &MaildirBatch{m: m} }

// Add copies r into a new file in tmp/ and adds it to the group; it
// returns the number of bytes written. The message is neither durable
// nor visible in new/ before Flush. On an error (including an error
// reading r) the file is removed and the group is as it was.
func (b *MaildirBatch) Add(r io.Reader) (n int64, err error) {
	d, name, f, n, err := b.m.write(r)
	if err != nil {
		return n, err
	}
	if syncEachFile {
		err = f.sync()
	}
	if cerr := f.close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.sys.remove(name)
		b.m.release(d, true)
		return n, err
	}
	b.mu.Lock()
	b.pending = append(b.pending, staged{d: d, name: name})
	b.mu.Unlock()
	return n, nil
}

// Pending returns the number of messages added and not yet flushed or
// discarded.
func (b *MaildirBatch) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Flush makes the group durable and publishes it: the messages added
// since the last Flush are made durable, renamed into new/, and new/ is
// fsynced. It returns their paths in new/, in the order they were added.
// On an error nothing of the group is left in new/ or tmp/. Flush with
// nothing added does nothing.
func (b *MaildirBatch) Flush() (paths []string, err error) {
	group := b.take()
	if len(group) == 0 {
		return nil, nil
	}
	// The directories the group was written in: one set, unless the
	// Maildir opened them again after a failure meanwhile.
	var ds []*dirs
	for _, s := range group {
		if !slices.Contains(ds, s.d) {
			ds = append(ds, s.d)
		}
	}
	renamed := 0
	defer func() {
		if err != nil {
			for _, s := range group[:renamed] {
				s.d.sys.unpublish(s.name)
			}
			for _, s := range group[renamed:] {
				s.d.sys.remove(s.name)
			}
			paths = nil
		}
		for _, s := range group {
			b.m.release(s.d, err != nil)
		}
	}()
	for _, d := range ds {
		if err = d.sys.syncGroup(); err != nil {
			return nil, err
		}
	}
	for _, s := range group {
		if err = s.d.sys.rename(s.name); err != nil {
			return nil, err
		}
		renamed++
	}
	for _, d := range ds {
		if err = d.sys.syncNew(); err != nil {
			return nil, err
		}
	}
	paths = make([]string, len(group))
	for i, s := range group {
		paths[i] = filepath.Join(b.m.dir, "new", s.name)
	}
	return paths, nil
}

// Discard drops the group: the files of the messages added since the
// last Flush are removed from tmp/ and never published. It returns how
// many there were.
func (b *MaildirBatch) Discard() int {
	group := b.take()
	for _, s := range group {
		s.d.sys.remove(s.name)
		b.m.release(s.d, false)
	}
	return len(group)
}

// take empties the group and returns what it held.
func (b *MaildirBatch) take() []staged {
	b.mu.Lock()
	defer b.mu.Unlock()
	group := b.pending
	b.pending = nil
	return group
}
