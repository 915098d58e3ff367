"""Studies: several suites run as one unit, their numbers judged against a reference document, and its claims tested."""
