#!/bin/sh
# Build {{module}}.wasm from app.py with componentize-py
# (pip install -r requirements-dev.txt).
set -e
cd "$(dirname "$0")"
componentize-py -d wit -w {{kind}} componentize -p . -p lib app -o {{module}}.wasm
