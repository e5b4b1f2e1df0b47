"""lab/eval."""
