"""Writing a reporter: subclass `Reporter`, then in the app module

    Meta, ReportRenderer = export_reporter(MyReporter())

`render` gets the run's summary (`ReportInput.summary`, the same JSON as
`summary.json`) and returns files; paths are relative to the results
directory. A reporter that `wants_records` reads them with `records.each()`.
"""

from typing import List

from .types import OutputFile, PluginInfo, ReportInput


class Reporter:
    def info(self) -> PluginInfo:
        raise NotImplementedError

    def check_config(self, config: dict) -> None:
        """Raise `ConfigError` to refuse the configuration."""

    def wants_records(self) -> bool:
        return False

    def render(self, input: ReportInput) -> List[OutputFile]:
        raise NotImplementedError
