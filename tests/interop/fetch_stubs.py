"""Fetch the gRPC stubs model-server projects publish on PyPI, for the
interoperability test's server (grpc_server.py), into DEST.

Only the generated message and service modules are taken out of each wheel,
under empty package __init__ files: the packages' own __init__ modules pull
in the projects' whole runtimes, which the test has no use for.

Usage: fetch_stubs.py DEST
"""

import pathlib
import subprocess
import sys
import tempfile
import zipfile

# (wheel, version, the generated modules it carries)
WHEELS = [
    (
        "tritonclient",
        "2.73.0",
        ["tritonclient/grpc/service_pb2.py", "tritonclient/grpc/service_pb2_grpc.py", "tritonclient/grpc/model_config_pb2.py"],
    ),
    (
        "smg-grpc-proto",
        "0.4.28",
        [
            "smg_grpc_proto/generated/common_pb2.py",
            "smg_grpc_proto/generated/vllm_engine_pb2.py",
            "smg_grpc_proto/generated/vllm_engine_pb2_grpc.py",
        ],
    ),
    (
        "google-jetstream",
        "0.2.2",
        ["jetstream/core/proto/jetstream_pb2.py", "jetstream/core/proto/jetstream_pb2_grpc.py"],
    ),
]


def main():
    dest = pathlib.Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as download:
        for name, version, members in WHEELS:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                 "--no-deps", "--only-binary", ":all:", "--dest", download, f"{name}=={version}"],
                check=True,
            )
            wheel = next(pathlib.Path(download).glob(f"{name.replace('-', '_')}-{version}-*.whl"))
            with zipfile.ZipFile(wheel) as z:
                for member in members:
                    target = dest / member
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(member))
                    # Every package up to dest, empty.
                    for package in target.parents:
                        if package == dest:
                            break
                        (package / "__init__.py").touch()


if __name__ == "__main__":
    main()
