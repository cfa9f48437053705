"""The data stage: speech + noise -> a dataset folder with fixed valid/test pairs and training pools.

`build_dataset(cfg)` builds (or reuses) the dataset named by a DataConfig; `Dataset.open(cfg)`
serves it. See `sepipe.data.build` for the folder layout and the split rules.
"""

from sepipe.data.build import Dataset, Pair, build_dataset, dataset_dir

__all__ = ["Dataset", "Pair", "build_dataset", "dataset_dir"]
