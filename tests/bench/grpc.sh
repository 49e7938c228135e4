#!/usr/bin/env bash
# The client's cost of gRPC against SSE for the same responses: Triton's
# KServe v2 protocol streamed over gRPC (`kserve-v2-grpc`, ModelStreamInfer)
# and over SSE (`kserve-v2-http`, generate_stream), 64 messages a response,
# against `barrage sim --mode zero`. Each rate runs both codecs back to back
# (SSE first, then gRPC), in one sitting, through tests/bench/loadgen.sh;
# compare cpu_s/1k_ok between the two rows of a rate, and read the highest
# gRPC rate whose lag_p99 stays under 1 ms.
#
#   cargo build --release -p barrage && tests/bench/grpc.sh
#   RATES="1000 2000" DURATION=20 tests/bench/grpc.sh
#   CONNECTIONS=2 tests/bench/grpc.sh    # gRPC calls over two HTTP/2 connections
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${RATES:-"1000 2000 3000"}
CONNECTIONS=${CONNECTIONS:-1}
for rate in $RATES; do
    for codec in kserve-v2-http kserve-v2-grpc; do
        echo "# $codec"
        RATES=$rate ARGS="--codec $codec --grpc-connections $CONNECTIONS" tests/bench/loadgen.sh
    done
done
