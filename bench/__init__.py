"""Benchmarks and load tests; results are committed under docs/ with the machine they ran on."""
