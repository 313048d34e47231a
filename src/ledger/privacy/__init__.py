"""Personal data handling: number checks, masking and per-subject encryption."""
