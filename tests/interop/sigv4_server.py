#!/usr/bin/env python3
"""A stand-in for Bedrock's Converse endpoint and a SageMaker endpoint that
checks every request's SigV4 signature with botocore's own SigV4Auth (PyPI
`botocore`, AWS's Python SDK core), for tests/e2e/interop.rs.

For each request it rebuilds an AWSRequest from what arrived (method, the
path as sent, the body, the headers the request says it signed), has
botocore sign it with the same credentials at the request's own
X-Amz-Date and for the service the path belongs to (`sagemaker` for
/endpoints/…, else `bedrock`), and compares botocore's Authorization header
with the one Barrage's plugin sent. A match gets a whole response in the
API's shape (Converse's, or the OpenAI chat completion a SageMaker
container answers with); a mismatch gets AWS's 403, and both headers go to
stderr.

usage: sigv4_server.py PORT ACCESS_KEY_ID SECRET_ACCESS_KEY REGION [SESSION_TOKEN]
Listens on 127.0.0.1 only.
"""

import datetime
import http.server
import json
import sys
from unittest import mock

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PORT = int(sys.argv[1])
CREDENTIALS = Credentials(sys.argv[2], sys.argv[3], sys.argv[5] if len(sys.argv) > 5 else None)
REGION = sys.argv[4]


def service(path):
    return "sagemaker" if path.startswith("/endpoints/") else "bedrock"


def expected_authorization(method, host, path, headers, body):
    authorization = headers.get("authorization", "")
    if "SignedHeaders=" not in authorization:
        return None
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    when = datetime.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
    request = AWSRequest(
        method=method,
        url=f"https://{host}{path}",
        data=body,
        headers={name: headers[name] for name in signed if name in headers},
    )
    # botocore reads the clock to date a signature; this one is dated by the request.
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        SigV4Auth(CREDENTIALS, service(path), REGION).add_auth(request)
    return request.headers["Authorization"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        sent = headers.get("authorization")
        expected = expected_authorization("POST", headers.get("host", ""), self.path, headers, body)
        if sent is None or sent != expected:
            print(f"signature mismatch\n  sent:     {sent}\n  botocore: {expected}", file=sys.stderr, flush=True)
            self.reply(
                403,
                {"message": "The request signature we calculated does not match the signature you provided."},
                {"x-amzn-ErrorType": "InvalidSignatureException"},
            )
            return
        print(f"signature ok: {self.path}", file=sys.stderr, flush=True)
        if service(self.path) == "sagemaker":
            answer = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "signed and checked"}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        else:
            answer = {
                "output": {"message": {"role": "assistant", "content": [{"text": "signed and checked"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10},
                "metrics": {"latencyMs": 1},
            }
        self.reply(200, answer, {})

    def reply(self, status, payload, extra):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
