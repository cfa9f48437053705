"""The data stage: speech + noise -> a dataset folder with fixed valid/test pairs and training pools.

`build_dataset(cfg)` builds (or reuses) the dataset named by a DataConfig; `Dataset.open(cfg)`
serves it. Modules: `layout` (folder, sizes, identity), `build` (fingerprint, lock, manifest),
one builder per source (`build_debian`, `build_corpus`), `fixed` (the fixed valid/test mixtures),
`dataset` (the reader); below them `debian`, `sources`, `noise_sets` (the rules of each `data.noise_set`),
`speech_sets` and `speech_quality` (the extra voices of each `data.speech_set` and their clean-target gate), `corpus`, `generator`, `mixing`, `reverb` (rooms) and `mic` (device EQ, clipping).
"""

from sepipe.data.build import build_dataset
from sepipe.data.dataset import Dataset
from sepipe.data.layout import Pair, dataset_dir

__all__ = ["Dataset", "Pair", "build_dataset", "dataset_dir"]
