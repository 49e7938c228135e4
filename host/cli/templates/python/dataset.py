"""{{name}}: a Barrage dataset: a prompt per line of each input file.
Blank lines and lines starting with `#` are passed over; a line longer than
`max_chars`, or with a control character (binary junk, not text), is
skipped and reported with its file and line.
Settings: `output_tokens` (each request's output length), `max_chars`
(default 20000), `shuffle` (order the prompts by the run's seed)."""

from barrage_plugin import ConfigError, Dataset, DatasetError, PluginInfo, Sample, export_dataset, files, random, tokenizer
from barrage_plugin import config as host_config

SETTINGS = {
    "output_tokens": lambda v: type(v) is int and 0 <= v < 1 << 32,
    "max_chars": lambda v: type(v) is int and v >= 0,
    "shuffle": lambda v: isinstance(v, bool),
}


def is_control(c):
    # Unicode's Cc, as Rust's char::is_control; a tab is text.
    return c != "\t" and (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F)


class Plugin(Dataset):
    def info(self):
        return PluginInfo("{{name}}", "0.1.0", "a prompt per line of each input file")

    def check_config(self, config):
        for key, value in config.items():
            if key not in SETTINGS:
                raise ConfigError(f"unknown field `{key}`, expected one of {', '.join(SETTINGS)}", field=key)
            if not SETTINGS[key](value):
                raise ConfigError(f"invalid value {value!r} for `{key}`", field=key)

    def samples(self):
        settings = host_config.value()
        max_chars = settings.get("max_chars", 20000)
        prompts, skipped = [], []
        for name in files.names():
            try:
                for number, line in files.lines(name):
                    if not line.strip() or line.startswith("#"):
                        continue
                    control = next((i for i, c in enumerate(line) if is_control(c)), None)
                    if control is not None:
                        message = f"a control character (U+{ord(line[control]):04X}) at column {control + 1}: not text"
                        skipped.append(DatasetError(message, name, number))
                        continue
                    if len(line) > max_chars:
                        skipped.append(DatasetError(f"a prompt of more than {max_chars} characters (max_chars)", name, number))
                        continue
                    prompts.append(line)
            except UnicodeDecodeError as e:
                raise DatasetError(f"not UTF-8: {e.reason}", name) from None
        if settings.get("shuffle", False):
            # Fisher-Yates on the run's seeded stream: the same seed, the same order.
            for i in range(len(prompts) - 1, 0, -1):
                j = random.next_u64() % (i + 1)
                prompts[i], prompts[j] = prompts[j], prompts[i]
        yield from skipped
        for id, prompt in enumerate(prompts):
            sample = Sample.text(id, prompt)
            sample.prompt_tokens = tokenizer.count(prompt)
            sample.output_tokens = settings.get("output_tokens")
            yield sample


# componentize-py finds the world's exports under these names.
Meta, DatasetSource = export_dataset(Plugin())
