"""A gRPC model server on Python's grpcio, for Barrage's interoperability test.

It serves three services with the stubs their projects publish (KServe v2's
GRPCInferenceService from NVIDIA's `tritonclient` wheel, whose proto is
KServe's with the ModelStreamInfer extension KServe's own lacks; vLLM's
VllmEngine from `smg-grpc-proto`, JetStream's Orchestrator from
`google-jetstream`; tests/setup puts them under target/test-tools/grpc-stubs),
on one h2c port, and answers
every generation with the same known script: messages of SCRIPT tokens each,
the first TTFT_MS after the call arrives, the rest ITL_MS apart.

Each call's ground truth goes to the truth file as one JSON line: the service,
Barrage's x-request-id, what the request asked as the official stubs decoded
it, when the call arrived and when each message was handed to grpcio
(time.monotonic_ns: CLOCK_MONOTONIC, the clock Barrage times with).

Metadata steers failures: `x-fail: CODE` aborts the call at once with that
status (a trailers-only response); `x-fail-after: N` aborts with INTERNAL
after N messages.

Usage: grpc_server.py PORT TRUTH_FILE
"""

import json
import sys
import threading
import time
from concurrent import futures

import grpc

from jetstream.core.proto import jetstream_pb2, jetstream_pb2_grpc
from tritonclient.grpc import service_pb2 as kserve_pb2
from tritonclient.grpc import service_pb2_grpc as kserve_pb2_grpc
from smg_grpc_proto.generated import vllm_engine_pb2, vllm_engine_pb2_grpc

# Tokens in each message: 8 messages, 12 tokens.
SCRIPT = [1, 2, 1, 3, 1, 2, 1, 1]
TTFT_MS = 60
ITL_MS = 12


class Truth:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, record):
        with self.lock:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()


class Call:
    """One call: its metadata, its truth record, and the script's pacing."""

    def __init__(self, truth, service, context, asked):
        self.truth = truth
        self.context = context
        self.metadata = dict(context.invocation_metadata())
        self.record = {
            "service": service,
            "request_id": self.metadata.get("x-request-id"),
            "arrived_ns": time.monotonic_ns(),
            "asked": asked,
            "sent_ns": [],
            "tokens": [],
        }
        self.arrived = time.monotonic()

    def messages(self):
        """Yield (index, tokens) at the script's times; abort as the metadata says."""
        code = self.metadata.get("x-fail")
        if code:
            self.finish()
            self.context.abort(getattr(grpc.StatusCode, code), "refused by x-fail")
        fail_after = int(self.metadata.get("x-fail-after", len(SCRIPT) + 1))
        for i, tokens in enumerate(SCRIPT):
            if i == fail_after:
                self.finish()
                self.context.abort(grpc.StatusCode.INTERNAL, f"failed after {i} messages")
            due = self.arrived + (TTFT_MS + ITL_MS * i) / 1000
            time.sleep(max(0.0, due - time.monotonic()))
            yield i, tokens

    def sent(self, tokens):
        self.record["sent_ns"].append(time.monotonic_ns())
        self.record["tokens"].append(tokens)

    def finish(self):
        self.truth.write(self.record)


def words(i, tokens):
    return "".join(f" w{i}.{k}" for k in range(tokens))


def token_ids(i, tokens):
    return [100 * (i + 1) + k for k in range(tokens)]


def kserve_inputs(request):
    """The inputs as the official stubs decode them: name -> first element."""
    out = {}
    for i, tensor in enumerate(request.inputs):
        c = tensor.contents
        if request.raw_input_contents:
            out[tensor.name] = {"raw_bytes": len(request.raw_input_contents[i])}
        elif tensor.datatype == "BYTES":
            out[tensor.name] = c.bytes_contents[0].decode()
        elif tensor.datatype == "BOOL":
            out[tensor.name] = c.bool_contents[0]
        elif tensor.datatype == "FP32":
            out[tensor.name] = c.fp32_contents[0]
        else:
            out[tensor.name] = c.int_contents[0]
    return out


def kserve_response(request, text, tokens):
    """A response with its outputs in `contents` (Triton sends raw contents;
    this takes the other way the protocol allows)."""
    def tensor(name, datatype, **contents):
        return kserve_pb2.ModelInferResponse.InferOutputTensor(
            name=name,
            datatype=datatype,
            shape=[1],
            contents=kserve_pb2.InferTensorContents(**contents),
        )

    return kserve_pb2.ModelInferResponse(
        model_name=request.model_name,
        id=request.id,
        outputs=[
            tensor("text_output", "BYTES", bytes_contents=[text.encode()]),
            tensor("num_output_tokens", "UINT32", uint_contents=[tokens]),
            tensor("num_input_tokens", "UINT32", uint_contents=[7]),
        ],
    )


class KServe(kserve_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, truth):
        self.truth = truth

    def ModelStreamInfer(self, request_iterator, context):
        for request in request_iterator:
            call = Call(self.truth, "kserve", context, {"model": request.model_name, "inputs": kserve_inputs(request)})
            for i, tokens in call.messages():
                response = kserve_response(request, words(i, tokens), tokens)
                call.sent(tokens)
                yield kserve_pb2.ModelStreamInferResponse(infer_response=response)
            call.finish()

    def ModelInfer(self, request, context):
        call = Call(self.truth, "kserve", context, {"model": request.model_name, "inputs": kserve_inputs(request)})
        text, total = "", 0
        for i, tokens in call.messages():
            text += words(i, tokens)
            total += tokens
        call.sent(total)
        call.finish()
        return kserve_response(request, text, total)


class Vllm(vllm_engine_pb2_grpc.VllmEngineServicer):
    def __init__(self, truth):
        self.truth = truth

    def Generate(self, request, context):
        p = request.sampling_params
        asked = {
            "request_id": request.request_id,
            "input": request.WhichOneof("input"),
            "text": request.text,
            "input_ids": list(request.tokenized.input_ids),
            "max_tokens": p.max_tokens if p.HasField("max_tokens") else None,
            "min_tokens": p.min_tokens,
            "ignore_eos": p.ignore_eos,
            "skip_special_tokens": p.skip_special_tokens,
            "stream": request.stream,
        }
        call = Call(self.truth, "vllm", context, asked)
        prompt = len(request.text.split()) or len(request.tokenized.input_ids)
        ids = []
        last = []
        for i, tokens in call.messages():
            last = token_ids(i, tokens)
            ids += last
            if request.stream:
                call.sent(tokens)
                yield vllm_engine_pb2.GenerateResponse(
                    chunk=vllm_engine_pb2.GenerateStreamChunk(
                        token_ids=last, prompt_tokens=prompt, completion_tokens=tokens, cached_tokens=3
                    )
                )
        # Streamed, the complete repeats the last chunk's tokens, as vLLM's servicer does.
        output = last if request.stream else ids
        if not request.stream:
            call.sent(len(ids))
        call.finish()
        yield vllm_engine_pb2.GenerateResponse(
            complete=vllm_engine_pb2.GenerateComplete(
                output_ids=output,
                finish_reason="length",
                prompt_tokens=prompt,
                completion_tokens=len(output),
                cached_tokens=3,
            )
        )


class JetStream(jetstream_pb2_grpc.OrchestratorServicer):
    def __init__(self, truth):
        self.truth = truth

    def Decode(self, request, context):
        asked = {
            "max_tokens": request.max_tokens,
            "content": request.WhichOneof("content"),
            "text": request.text_content.text,
        }
        call = Call(self.truth, "jetstream", context, asked)
        for i, tokens in call.messages():
            sample = jetstream_pb2.DecodeResponse.StreamContent.Sample(
                text=words(i, tokens), token_ids=token_ids(i, tokens)
            )
            call.sent(tokens)
            yield jetstream_pb2.DecodeResponse(stream_content=jetstream_pb2.DecodeResponse.StreamContent(samples=[sample]))
        call.finish()


def main():
    port, truth_path = sys.argv[1], sys.argv[2]
    truth = Truth(truth_path)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    kserve_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(KServe(truth), server)
    vllm_engine_pb2_grpc.add_VllmEngineServicer_to_server(Vllm(truth), server)
    jetstream_pb2_grpc.add_OrchestratorServicer_to_server(JetStream(truth), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
