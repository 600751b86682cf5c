"""Reference solutions, one folder per assignment (the single source of truth)."""
