"""Dataset flags shared by the training commands (`omni sft`, `omni pt`, `omni rlhf` inherit them).

Kept free of heavy imports: this module is imported whenever a command's `--help` is printed.
"""

from __future__ import annotations

from dataclasses import dataclass

from omni.options import option


@dataclass
class DataOptions:
    """Which datasets to read and how; `omni.data.load_datasets` turns these into rows."""

    dataset: list[str] = option(
        default_factory=list,
        help="training data: files (.jsonl .json .csv .parquet), `datasets` save_to_disk folders, registered "
        "names (identity) or hub ids (org/name[:subset]); NAME#N samples N rows with --data-seed",
        metavar="DATASET",
    )
    val_dataset: list[str] = option(default_factory=list, help="validation data, in the same forms as --dataset")
    val_split_ratio: float = option(
        0.0,
        help="hold out this fraction of the training rows for validation (ignored with --val-dataset)",
        aliases=("split_dataset_ratio",),
    )
    columns: list[str] = option(
        default_factory=list,
        help='rename dataset columns before reading them: OLD=NEW ... (or ms-swift\'s JSON \'{"OLD": "NEW"}\')',
        metavar="OLD=NEW",
    )
    streaming: bool = option(False, help="read rows lazily while training, for data larger than memory")
    skip_bad_rows: bool = option(False, help="skip malformed rows (and count them) instead of stopping")
    media_as_text: bool = option(
        False,
        help="rows with images, audio or video on a model that cannot take them: train their <image>/<audio>/"
        "<video> tags as plain text (by default such a row is an error naming it)",
    )
    data_seed: int = option(42, help="seed for NAME#N sampling and the validation split", aliases=("dataset_seed",))
