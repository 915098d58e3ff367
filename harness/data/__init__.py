"""Datasets: fetched and verified on disk (:mod:`.fetch`), read and split in memory (:mod:`.idx`)."""

from harness.data.fetch import (
           DATASETS,
           DataError,
           DatasetInfo,
           check_cache,
           data_dir,
           ensure,
           verify,
)
from harness.data.idx import Dataset, Splits, load, provide, read_idx, split

__all__ = ["DATASETS", "DataError", "Dataset", "DatasetInfo", "Splits", "check_cache", "data_dir", "ensure", "load",
           "provide", "read_idx", "split", "verify"]
