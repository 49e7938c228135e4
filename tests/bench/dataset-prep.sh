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
export BARRAGE_CACHE_DIR="$work/cache"

# ShareGPT-style data: one to three exchanges per conversation, lognormal
# lengths (human mean ~60 words, answers ~180), words drawn from real text.
python3 - "$work" "$COUNT" plugins/dataset-common/src/corpus.txt <<'PY'
import json, random, sys
work, count, corpus = sys.argv[1], int(sys.argv[2]), sys.argv[3]
words = open(corpus).read().split()
rng = random.Random(1)
def text(mean):
    n = max(1, int(rng.lognormvariate(0, 0.8) * mean * 0.73))
    i = rng.randrange(len(words))
    return " ".join(words[(i + k) % len(words)] for k in range(n))
with open(f"{work}/sharegpt.json", "w") as f:
    f.write("[\n")
    for c in range(count):
        conv = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            conv += [{"from": "human", "value": text(60)}, {"from": "gpt", "value": text(180)}]
        f.write(("," if c else "") + json.dumps({"id": str(c), "conversations": conv}) + "\n")
    f.write("]\n")
with open(f"{work}/corpus.txt", "w") as f:
    for _ in range(2000):
        f.write(text(200) + "\n")
PY
ls -la "$work/sharegpt.json" | awk '{printf "data: %.1f MB, %s conversations\n", $5 / 1e6, '"$COUNT"'}'
cargo run --quiet --release -p barrage --example train-tokenizer -- "$work/corpus.txt" "$work/tokenizer.json" 32000

prep() {
    /usr/bin/time -f "  %e s wall, %U s user, peak RSS %M KiB" \
        "$BIN" dataset prepare --dataset sharegpt --dataset-file "$work/sharegpt.json" "$@" 2>&1 >/dev/null \
        | grep -E "dataset sharegpt|wall"
}
echo "tokenizer.json (BPE 32k), prepared:"
prep --tokenizer "$work/tokenizer.json" --no-dataset-cache
echo "tokenizer.json (BPE 32k), first run filling the cache, then from the cache:"
prep --tokenizer "$work/tokenizer.json"
prep --tokenizer "$work/tokenizer.json"
echo "words (approximate):"
prep --no-dataset-cache
