import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from app import Plugin  # noqa: E402
from barrage_plugin import testing  # noqa: E402


class PluginTest(unittest.TestCase):
    def test_a_line_per_stage_and_the_statuses(self):
        summary = {
            "schema_version": 1,
            "stages": [{"label": "constant 5/s", "sent": 3, "succeeded": 2, "failed": 1, "ttft_ms": {"p50": 12.34}}],
        }
        records = [{"status": "ok"}, {"status": "ok"}, {"status": "http_error"}]
        files = testing.render(Plugin(), summary, records)
        self.assertEqual(files[0].path, "{{name}}.txt")
        self.assertEqual(
            files[0].contents.decode(),
            "stage constant 5/s: 3 sent, 2 succeeded, 1 failed, TTFT p50 12.340 ms\nhttp_error: 1\nok: 2\n",
        )


if __name__ == "__main__":
    unittest.main()
