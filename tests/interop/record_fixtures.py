"""Write the vLLM and JetStream response bodies in tests/fixtures/grpc/ with
the stubs those projects publish (tests/setup fetches them), so the codecs'
recorded-body tests read bytes an encoder nobody here wrote made.

Usage: PYTHONPATH=target/test-tools/grpc-stubs python3 tests/interop/record_fixtures.py tests/fixtures/grpc
"""

import pathlib
import struct
import sys

from jetstream.core.proto import jetstream_pb2
from smg_grpc_proto.generated import vllm_engine_pb2 as vllm

NOT_PROTOBUF = b"\xff\xff"


def body(*messages):
    return b"".join(b"\0" + struct.pack(">I", len(m)) + m for m in messages)


def chunk(ids):
    return vllm.GenerateResponse(
        chunk=vllm.GenerateStreamChunk(token_ids=ids, prompt_tokens=5, completion_tokens=len(ids), cached_tokens=2)
    ).SerializeToString()


def complete(ids, reason):
    return vllm.GenerateResponse(
        complete=vllm.GenerateComplete(
            output_ids=ids, finish_reason=reason, prompt_tokens=5, completion_tokens=len(ids), cached_tokens=2
        )
    ).SerializeToString()


def decode(samples):
    content = jetstream_pb2.DecodeResponse.StreamContent(
        samples=[jetstream_pb2.DecodeResponse.StreamContent.Sample(text=t, token_ids=ids) for t, ids in samples]
    )
    return jetstream_pb2.DecodeResponse(stream_content=content).SerializeToString()


def main():
    out = pathlib.Path(sys.argv[1])
    fixtures = {
        # A step of one token, a step of three, an empty step, and the
        # complete repeating the last step's tokens.
        "vllm-stream": body(chunk([11]), chunk([12, 13, 14]), chunk([]), chunk([15]), complete([15], "length")),
        # The engine aborted the request after two tokens.
        "vllm-abort": body(chunk([1, 2]), complete([2], "abort")),
        "vllm-malformed": body(chunk([1]), NOT_PROTOBUF, chunk([2]), complete([2], "stop")),
        # JetStream's placeholder first message, then steps of text and
        # ids, one of them two tokens (speculative decoding).
        "jetstream-stream": body(
            jetstream_pb2.DecodeResponse(initial_content=jetstream_pb2.DecodeResponse.InitialContent()).SerializeToString(),
            decode([("The", [791])]),
            decode([(" café", [53, 9])]),
            decode([(" is", [374])]),
        ),
        "jetstream-malformed": body(decode([("a", [1])]), NOT_PROTOBUF, decode([(" b", [2])])),
    }
    for name, data in fixtures.items():
        (out / f"{name}.grpc").write_bytes(data)


if __name__ == "__main__":
    main()
