#!/usr/bin/env bash
# Time and peak memory to prepare COUNT (default 100,000) ShareGPT-style
# conversations with a real tokenizer.json: a byte-level BPE (32k) trained
# by the `tokenizers` crate on the same text. Three measurements: with the
# trained tokenizer, with the `words` fallback, and the second run of the
# first (from the dataset cache).
#
#   cargo build --release -p barrage && tests/bench/dataset-prep.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-$PWD/target/release/barrage}
COUNT=${COUNT:-100000}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
export BARRAGE_CACHE_DIR="$work/cache"

# ShareGPT-style data: one to three exchanges per conversation, lognormal
# lengths (human mean ~60 words, answers ~180): runs of real text mixed with
# words of a 50,000-word made-up vocabulary drawn with Zipf frequencies, so
# the BPE has a realistic number of words to learn.
python3 - "$work" "$COUNT" plugins/dataset-common/src/corpus.txt <<'PY'
import json, random, sys
work, count, corpus = sys.argv[1], int(sys.argv[2]), sys.argv[3]
words = open(corpus).read().split()
rng = random.Random(1)
syll = ["ka", "ri", "to", "men", "sa", "lo", "ve", "dan", "pi", "or", "tek", "al", "zu", "ne", "bra", "is", "com", "ple", "tion", "ing", "er", "un", "de", "str", "qu", "ex"]
made_up = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(50000)]
cum = list(__import__("itertools").accumulate(1 / (r + 1) ** 1.1 for r in range(len(made_up))))
def text(mean):
    n = max(1, int(rng.lognormvariate(0, 0.8) * mean * 0.73))
    out = []
    while len(out) < n:
        i = rng.randrange(len(words))
        out += words[i:i + rng.randint(3, 12)]
        out += rng.choices(made_up, cum_weights=cum, k=rng.randint(1, 6))
    return " ".join(out[:n])
with open(f"{work}/sharegpt.json", "w") as f:
    f.write("[\n")
    for c in range(count):
        conv = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            conv += [{"from": "human", "value": text(60)}, {"from": "gpt", "value": text(180)}]
        f.write(("," if c else "") + json.dumps({"id": str(c), "conversations": conv}) + "\n")
    f.write("]\n")
with open(f"{work}/corpus.txt", "w") as f:
    for _ in range(20000):
        f.write(text(200) + "\n")
PY
ls -la "$work/sharegpt.json" | awk '{printf "data: %.1f MB, %s conversations\n", $5 / 1e6, '"$COUNT"'}'
cargo run --quiet --release -p barrage-plugin-host --example train-tokenizer -- "$work/corpus.txt" "$work/tokenizer.json" 32000

prep() {
    /usr/bin/time -f "  %e s wall, %U s user, peak RSS %M KiB" \
        "$BIN" dataset prepare --dataset sharegpt --dataset-file "$work/sharegpt.json" "$@" 2>&1 >/dev/null \
        | grep -E "dataset sharegpt|wall"
}
echo "tokenizer.json (trained byte-level BPE), prepared afresh:"
prep --tokenizer "$work/tokenizer.json" --no-dataset-cache
echo "tokenizer.json, a first run filling the cache, then a second from the cache:"
prep --tokenizer "$work/tokenizer.json"
prep --tokenizer "$work/tokenizer.json"
echo "words (approximate):"
prep --no-dataset-cache
