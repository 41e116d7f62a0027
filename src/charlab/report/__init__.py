"""report: the human-facing pages of a run (HTML, escaping for every medium)."""
