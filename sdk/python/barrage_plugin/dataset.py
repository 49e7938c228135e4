"""Writing a dataset: subclass `Dataset`, make `samples` a generator, then
in the app module

    Meta, DatasetSource = export_dataset(MyDataset())

Yield a `Sample` per request; yield a `DatasetError` to skip bad input (it
is counted and shown, with its file and line); raise one to fail the run.
Read input through `files` (only the files the configuration names) and
draw randomness from `random` (seeded by the run), so the same seed gives
the same samples.
"""

from typing import Iterator, Union

from .types import DatasetError, PluginInfo, Sample


class Dataset:
    def info(self) -> PluginInfo:
        raise NotImplementedError

    def check_config(self, config: dict) -> None:
        """Raise `ConfigError` to refuse the configuration."""

    def samples(self) -> Iterator[Union[Sample, DatasetError]]:
        raise NotImplementedError
