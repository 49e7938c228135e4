"""Write the AWS event-stream bodies in tests/fixtures/aws/: Bedrock
ConverseStream and SageMaker InvokeEndpointWithResponseStream responses in
the shapes AWS's API references document, each message framed here
(prelude, headers, payload, CRC32s from Python's zlib). tests/e2e/codecs.rs
has botocore's own event-stream parser read every message back before the
codecs decode them, so the bytes are ones AWS's SDK accepts.

Usage: python3 tests/interop/record_aws_fixtures.py tests/fixtures/aws
"""

import json
import pathlib
import struct
import sys
import zlib


def message(headers, payload):
    h = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        h += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 16 + len(h) + len(payload)
    prelude = struct.pack(">II", total, len(h))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + h + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(kind, payload, content_type="application/json"):
    data = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    return message([(":event-type", kind), (":content-type", content_type), (":message-type", "event")], data)


def exception(kind, text):
    return message(
        [(":exception-type", kind), (":content-type", "application/json"), (":message-type", "exception")],
        json.dumps({"message": text}).encode(),
    )


BEDROCK = [
    event("messageStart", {"p": "abcdefgh", "role": "assistant"}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Add them."}}, "p": "abc"}),
    event("contentBlockStop", {"contentBlockIndex": 0, "p": "abcd"}),
    event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Two plus two"}, "p": "ab"}),
    event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": " is four."}, "p": "abcdef"}),
    event("contentBlockStop", {"contentBlockIndex": 1, "p": "a"}),
    event("messageStop", {"p": "abcdefghij", "stopReason": "end_turn"}),
    event(
        "metadata",
        {
            "metrics": {"latencyMs": 412},
            "p": "abc",
            "usage": {"inputTokens": 21, "outputTokens": 12, "totalTokens": 33, "cacheReadInputTokens": 0},
        },
    ),
]

BEDROCK_THROTTLED = [
    event("messageStart", {"role": "assistant"}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Once"}}),
    exception("throttlingException", "Too many tokens, please wait before trying again."),
]

# A SageMaker stream: the container's SSE bytes (an OpenAI-compatible
# chat stream, as LMI and vLLM write it) cut into parts wherever SageMaker
# cut them, mid-event and mid-line.
CONTAINER = (
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" world"},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":6,"completion_tokens":2,"total_tokens":8}}\n\n'
    b"data: [DONE]\n\n"
)
CUTS = [40, 150, 151, 300, 420, len(CONTAINER) - 3]
SAGEMAKER = [
    event("PayloadPart", CONTAINER[a:b], "application/octet-stream")
    for a, b in zip([0] + CUTS, CUTS + [len(CONTAINER)])
]

SAGEMAKER_MODEL_ERROR = [
    event("PayloadPart", CONTAINER[:150], "application/octet-stream"),
    message(
        [(":exception-type", "ModelStreamError"), (":content-type", "application/json"), (":message-type", "exception")],
        json.dumps({"Message": "CUDA out of memory", "ErrorCode": "ModelError"}).encode(),
    ),
]

out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for name, messages in [
    ("bedrock-stream", BEDROCK),
    ("bedrock-throttled", BEDROCK_THROTTLED),
    ("sagemaker-stream", SAGEMAKER),
    ("sagemaker-model-error", SAGEMAKER_MODEL_ERROR),
]:
    (out / f"{name}.eventstream").write_bytes(b"".join(messages))
