"""Suites: the framework-neutral model spec, overrides, the suite schema and loading."""
