import json
import unittest

from app import OllamaGenerate
from barrage_plugin import DecodeOptions, Event, Generation, Prompt, RequestSpec, testing


class OllamaGenerateTest(unittest.TestCase):
    def test_decodes_a_stream(self):
        frames = [
            testing.frame('{"response":"The","done":false}'),
            testing.frame('{"response":" sky","done":false}'),
            testing.frame('{"response":"","done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":2}'),
        ]
        events = testing.decode_stream(OllamaGenerate(), frames, DecodeOptions(want_text=True))
        self.assertEqual(events[0], Event.content(3, 1, "The"))
        self.assertEqual(events[2:], [Event.finish("stop"), Event.usage(26, 2), Event.done()])

    def test_a_line_that_is_not_json_is_malformed(self):
        events = testing.decode_stream(OllamaGenerate(), [testing.frame("{not json")])
        self.assertEqual(events[0].tag, "malformed")

    def test_encodes_with_the_configured_keep_alive_and_the_extra_fields(self):
        testing.set_config({"keep_alive": "10m"})
        spec = RequestSpec(
            1, "llama3", Prompt.text("Why is the sky blue?"), Generation(max_tokens=8), '{"raw": true, "keep_alive": "1h"}'
        )
        req = OllamaGenerate().encode(spec)
        body = json.loads(req.request.body)
        # Extra fields win over generated ones.
        self.assertEqual((body["keep_alive"], body["raw"], body["options"]["num_predict"]), ("1h", True, 8))
        self.assertEqual(req.framing, "ndjson")

    def test_rejects_unknown_settings(self):
        with self.assertRaises(Exception):
            OllamaGenerate().check_config({"keepalive": "1m"})


if __name__ == "__main__":
    unittest.main()
