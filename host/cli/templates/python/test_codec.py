import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from app import Plugin  # noqa: E402
from barrage_plugin import DecodeOptions, Event, Generation, Prompt, RequestSpec, testing  # noqa: E402

STREAM = (
    'data: {"choices":[{"text":"Hello","finish_reason":null}]}\n\n'
    'data: {"choices":[{"text":" world","finish_reason":"length"}]}\n\n'
    'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
    "data: [DONE]\n\n"
)


class PluginTest(unittest.TestCase):
    def test_decodes_a_stream_however_it_is_batched(self):
        events = testing.decode_stream(Plugin(), testing.sse_frames(STREAM), DecodeOptions(want_text=True))
        self.assertEqual(
            events,
            [
                Event.content(5, None, "Hello"),
                Event.content(6, None, " world"),
                Event.finish("length"),
                Event.usage(5, 2),
                Event.done(),
            ],
        )

    def test_a_chunk_that_is_not_json_is_malformed_and_an_error_is_the_servers(self):
        frames = testing.sse_frames('data: {oops\n\ndata: {"error":{"message":"overloaded","code":503}}\n\n')
        events = testing.decode_stream(Plugin(), frames)
        self.assertEqual(events, [Event.malformed("not a JSON chunk: {oops"), Event.server_error("overloaded", "503")])

    def test_encodes_the_generation_settings_and_the_extra_fields(self):
        spec = RequestSpec(1, "m", Prompt.text("Say hi"), Generation(max_tokens=8, include_usage=True), '{"top_k": 5}')
        body = Plugin().encode(spec).request.body.decode()
        self.assertEqual(
            body,
            '{"max_tokens":8,"model":"m","prompt":"Say hi","stream":true,"stream_options":{"include_usage":true},"top_k":5}',
        )


if __name__ == "__main__":
    unittest.main()
