"""The tasks only the paper needs; see :mod:`harness.paper`."""
