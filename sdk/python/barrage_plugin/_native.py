"""The host as plugin code sees it under plain CPython (unit tests): what
`barrage_plugin.testing` sets, answered the way the host answers."""

MASK = (1 << 64) - 1


class TestHost:
    def __init__(self):
        self.config = {}
        self.logs = []
        self.files = {}
        self.records = []
        self.secrets = {}
        self.rng_state = 0
        self.words = []
        self.vocab = {}

    def next_u64(self) -> int:
        # SplitMix64, the generator the host's `random` uses.
        self.rng_state = (self.rng_state + 0x9E3779B97F4A7C15) & MASK
        z = self.rng_state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    # The approximate `words` tokenizer: one token per whitespace-separated word.
    def encode(self, text: str):
        ids = []
        for word in text.split():
            if word not in self.vocab:
                self.vocab[word] = len(self.words)
                self.words.append(word)
            ids.append(self.vocab[word])
        return ids

    def decode(self, tokens) -> str:
        return " ".join(self.words[t] if t < len(self.words) else "<unk>" for t in tokens)


HOST = TestHost()
