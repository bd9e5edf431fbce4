"""Datasets: read files and registered datasets into validated rows of the messages format.

The trainers call `load_datasets(options, registry)`; `DataOptions` are the ``--dataset`` ... flags.
"""

from omni.data.loading import LoadedData, SkippedRows, StreamingRows, load_datasets
from omni.data.options import DataOptions
from omni.data.rows import Row

__all__ = ["DataOptions", "LoadedData", "Row", "SkippedRows", "StreamingRows", "load_datasets"]
