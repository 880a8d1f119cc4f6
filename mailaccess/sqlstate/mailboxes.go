package sqlstate

import (
	"context"
	"slices"
	"strings"

	"github.com/unimail/unimail/mailaccess"
)

var _ mailaccess.MailboxLister = (*State)(nil)

// Mailboxes returns, sorted, the names of the mailboxes that have at
// least one record and begin with prefix (mailaccess.MailboxLister). It
// reads the per-epoch counts, a row per mailbox and epoch, not the
// records.
func (s *State) Mailboxes(ctx context.Context, prefix string) ([]string, error) {
	c, cancel, err := s.begin(ctx)
	if err != nil {
		return nil, s.fail(ctx, "mailboxes", err)
	}
	defer cancel()
	out := []string{}
	if !storable(prefix) {
		return out, nil
	}
	rows, err := s.db.QueryContext(c, "SELECT DISTINCT mailbox FROM "+s.prefix+"counts WHERE n > 0")
	if err != nil {
		return nil, s.fail(ctx, "mailboxes", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, s.fail(ctx, "mailboxes", err)
		}
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "mailboxes", err)
	}
	slices.Sort(out)
	return out, nil
}
