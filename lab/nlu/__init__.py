"""lab/nlu."""
