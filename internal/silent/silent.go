// Package silent holds the logger packages mmapwal and recovery use when
// their Options give none.
package silent

import "log/slog"

// Logger drops every record: no level is enabled, so nothing is formatted.
var Logger = slog.New(slog.DiscardHandler)
