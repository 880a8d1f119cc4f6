package main

import (
	"io"
	"log/slog"

	"github.com/unimail/unimail"
)

func setTrace(opts *unimail.Options, w io.Writer)     {}
func setLogger(opts *unimail.Options, l *slog.Logger) {}
