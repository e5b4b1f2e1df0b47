"""lab/rescoring."""
