import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from app import Plugin  # noqa: E402
from barrage_plugin import DatasetError, testing  # noqa: E402

PROMPTS = "# greetings\nSay hi\n\nSay hello to the world\nwho are you\n"


def texts(samples):
    return [s.prompt.val for s in samples]


class PluginTest(unittest.TestCase):
    def test_a_prompt_per_line_with_its_token_count(self):
        samples, _ = testing.generate(Plugin(), config={"output_tokens": 16}, files={"prompts.txt": PROMPTS})
        self.assertEqual(texts(samples), ["Say hi", "Say hello to the world", "who are you"])
        self.assertEqual((samples[1].prompt_tokens, samples[1].output_tokens), (5, 16))

    def test_a_line_too_long_is_skipped_with_its_file_and_line(self):
        samples, skipped = testing.generate(Plugin(), config={"max_chars": 11}, files={"prompts.txt": PROMPTS})
        self.assertEqual(texts(samples), ["Say hi", "who are you"])
        self.assertEqual(skipped, [DatasetError("a prompt of more than 11 characters (max_chars)", "prompts.txt", 4)])

    def test_the_seed_decides_the_shuffled_order(self):
        def order(seed):
            samples, _ = testing.generate(Plugin(), config={"shuffle": True}, seed=seed, files={"prompts.txt": PROMPTS})
            return texts(samples)

        self.assertEqual(order(7), order(7))
        self.assertEqual(sorted(order(7)), ["Say hello to the world", "Say hi", "who are you"])


if __name__ == "__main__":
    unittest.main()
