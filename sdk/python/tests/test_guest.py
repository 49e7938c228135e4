"""The Python guest library under plain CPython: the test host answers as
the real one does, and the harness catches what the host would refuse."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from barrage_plugin import (  # noqa: E402
    Codec,
    Decoder,
    Event,
    FrameEvent,
    files,
    merge_extra,
    parse_json_object,
    random,
    records,
    snippet,
    testing,
    tokenizer,
)


class Counting(Codec):
    """A frame per content event; `answer` says how it goes wrong."""

    def __init__(self, answer="right"):
        self.answer = answer

    def decoder(self, head, options):
        answer = self.answer

        class Stream(Decoder):
            def push(self, frames):
                if answer == "per-batch":
                    return [FrameEvent(0, Event.content(1, 1))]
                if answer == "past-the-end":
                    return [FrameEvent(len(frames), Event.content(1, 1))]
                if answer == "not-an-event":
                    return [FrameEvent(0, "content")]
                return [FrameEvent(i, Event.content(len(f.data), 1)) for i, f in enumerate(frames)]

        return Stream()


class HarnessTest(unittest.TestCase):
    def setUp(self):
        testing.reset()

    def test_the_harness_pushes_as_the_host_does_and_catches_what_the_host_refuses(self):
        frames = [testing.frame(str(i)) for i in range(70)]
        indexed = testing.decode_stream_indexed(Counting(), frames)
        self.assertEqual([i for i, _ in indexed], list(range(70)))
        for answer, message in [
            ("per-batch", "depend on how frames are batched"),
            ("past-the-end", "push returned an event for frame 1 of a batch of 1 frames"),
            ("not-an-event", "is not an Event"),
        ]:
            with self.assertRaises(AssertionError) as caught:
                testing.decode_stream(Counting(answer), frames)
            self.assertIn(message, str(caught.exception))

    def test_sse_frames_are_cut_as_the_host_cuts_them(self):
        frames = testing.sse_frames("event: x\r\ndata: a\r\ndata: b\r\n\r\n: ping\n\ndata:c\n\nid: 7\n\n")
        self.assertEqual([(f.event, f.data) for f in frames], [("x", b"a\nb"), (None, b""), (None, b"c")])

    def test_random_is_the_hosts_splitmix64(self):
        testing.set_seed(0)
        # SplitMix64's first output for seed 0, as the host and the Rust SDK give it.
        self.assertEqual(random.next_u64(), 0xE220A8397B1DCDAF)
        self.assertTrue(0 <= random.next_f64() < 1)

    def test_the_words_tokenizer(self):
        ids = tokenizer.encode("the sky is the sky")
        self.assertEqual(ids, [0, 1, 2, 0, 1])
        self.assertEqual(tokenizer.decode(ids + [99]), "the sky is the sky <unk>")
        self.assertEqual(tokenizer.count("  two   words "), 2)

    def test_files_are_read_by_line_as_the_rust_sdk_reads_them(self):
        testing.generate(_NoSamples(), files={"a.txt": "one\r\ntwo\rstill two\n\nlast"})
        self.assertEqual(list(files.lines("a.txt")), [(1, "one"), (2, "two\rstill two"), (3, ""), (4, "last")])
        self.assertEqual(files.read("a.txt", 5, 3), b"two")
        with self.assertRaises(OSError):
            files.size("other.txt")

    def test_records_come_in_order(self):
        testing.render(_NoReport(), {"schema_version": 1}, [{"id": i} for i in range(2500)])
        self.assertEqual([r["id"] for r in records.each()], list(range(2500)))

    def test_helpers(self):
        body = {"a": 1}
        merge_extra(body, '{"a": 2, "b": 3}')
        self.assertEqual(body, {"a": 2, "b": 3})
        for bad in ["[1]", "{oops"]:
            with self.assertRaises(ValueError):
                merge_extra(body, bad)
        self.assertEqual(snippet("é".encode() * 300), "é" * 200 + "…")
        self.assertEqual(snippet(b"\xff ok"), "\ufffd ok")
        self.assertEqual(parse_json_object(b' {"a": 1} '), {"a": 1})
        for junk in [b"[1]", b"NaN", b'{"a": NaN}', b"\xff{}", b""]:
            self.assertIsNone(parse_json_object(junk), junk)


class _NoSamples:
    def check_config(self, config):
        pass

    def samples(self):
        return iter(())


class _NoReport:
    def render(self, input):
        return []


if __name__ == "__main__":
    unittest.main()
