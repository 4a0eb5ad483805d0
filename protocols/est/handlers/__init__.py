"""One module per EST resource (RFC 7030 §4.1-§4.5)."""
