"""{{name}}: a Barrage reporter: `{{name}}.txt`, a line per stage (requests
sent, succeeded and failed, TTFT p50) and the requests by status, counted
from the per-request records."""

from barrage_plugin import OutputFile, PluginInfo, Reporter, export_reporter, records


class Plugin(Reporter):
    def info(self):
        return PluginInfo("{{name}}", "0.1.0", "stages and statuses as text")

    def wants_records(self):
        return True

    def render(self, input):
        out = []
        for stage in input.summary.get("stages", []):
            p50 = (stage.get("ttft_ms") or {}).get("p50")
            ttft = f"{p50:.3f} ms" if isinstance(p50, (int, float)) else "-"
            out.append(
                f"stage {stage.get('label', '?')}: {stage.get('sent', 0)} sent, {stage.get('succeeded', 0)} succeeded, "
                f"{stage.get('failed', 0)} failed, TTFT p50 {ttft}\n"
            )
        by_status = {}
        for record in records.each():
            status = record.get("status", "?")
            by_status[status] = by_status.get(status, 0) + 1
        out.extend(f"{status}: {n}\n" for status, n in sorted(by_status.items()))
        return [OutputFile.text("{{name}}.txt", "".join(out))]


# componentize-py finds the world's exports under these names.
Meta, ReportRenderer = export_reporter(Plugin())
