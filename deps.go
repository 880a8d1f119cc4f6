package unimail
import (
 _ "github.com/emersion/go-imap/v2"
 _ "github.com/emersion/go-imap/v2/imapclient"
 _ "github.com/emersion/go-imap/v2/imapserver"
 _ "github.com/emersion/go-imap/v2/imapserver/imapmemserver"
 _ "github.com/knadh/go-pop3"
 _ "github.com/emersion/go-message"
 _ "github.com/emersion/go-message/mail"
 _ "github.com/emersion/go-message/charset"
 _ "github.com/emersion/go-sasl"
 _ "github.com/emersion/go-maildir"
)
