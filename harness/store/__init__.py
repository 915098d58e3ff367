"""The results store: runs and their cells in an embedded SQLite file (``reports/results.db``), and
a folder per run holding readable copies of them.

- :mod:`.database`: the store itself: schema and migrations, runs, cells (one commit per cell).
- :mod:`.leases`: who is writing a run, so two processes never write one run and a dead writer's run
  can be resumed.
- :mod:`.files`: a run folder's ``results.csv`` and ``results.json``, written from the store, and the
  one reader of ``results.json``.
- :mod:`.preflight`: the reports folder checked before a run starts.
"""

from harness.store.database import SCHEMA_VERSION, ResultsStore, RunInfo, now
from harness.store.files import read_run_file, write_run_files
from harness.store.leases import HEARTBEAT_INTERVAL, LEASE_TIMEOUT, Lease, RunBusy
from harness.store.preflight import check_reports

__all__ = ["HEARTBEAT_INTERVAL", "LEASE_TIMEOUT", "SCHEMA_VERSION", "Lease", "ResultsStore", "RunBusy", "RunInfo",
           "check_reports", "now", "read_run_file", "write_run_files"]
