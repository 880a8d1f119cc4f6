package mailaccess

import "github.com/unimail/unimail/mailaccess/driver"

// Mailbox is one open session with one mail drop: a POP3 maildrop or one
// IMAP folder. unimail.Dial, pop.Dial and imap.Dial return one; a Fetcher
// drives it. The contract that drivers implement is driver.Mailbox.
type Mailbox = driver.Mailbox

// UID is a message's stable identity within one mailbox, across sessions:
// the POP3 UIDL value, or "UIDVALIDITY/UID" for IMAP (see driver.UID).
type UID = driver.UID

// MessageInfo describes one message as listed by a Mailbox: its UID, its
// announced size and, where listed, its arrival date.
type MessageInfo = driver.MessageInfo
