"""A registry client nobody here wrote (PyPI's `oras`), for Barrage's OCI
interoperability test: what one pushes, the other pulls.

Usage:
  oras_client.py push REGISTRY REF FILE [CONFIG_MEDIA_TYPE]   # prints the manifest digest
  oras_client.py pull REGISTRY REF DIR                        # prints the pulled files' paths
  oras_client.py digest REGISTRY REF                          # prints the manifest digest
"""

import json
import os
import sys
import tempfile

import oras.client

WASM_CONFIG = "application/vnd.wasm.config.v0+json"


def client(registry):
    return oras.client.OrasClient(hostname=registry, insecure=True)


def main():
    command, registry, ref = sys.argv[1:4]
    c = client(registry)
    target = f"{registry}/{ref}"
    if command == "push":
        path = sys.argv[4]
        config_type = sys.argv[5] if len(sys.argv) > 5 else WASM_CONFIG
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "config.json")
            with open(config, "w") as f:
                json.dump({"architecture": "wasm", "os": "wasip2"}, f)
            response = c.push(
                files=[f"{path}:application/wasm"],
                target=target,
                manifest_config=f"{config}:{config_type}",
                disable_path_validation=True,
            )
        print(response.headers["Docker-Content-Digest"])
    elif command == "pull":
        for path in c.pull(target=target, outdir=sys.argv[4]):
            print(path)
    elif command == "digest":
        container = c.get_container(target)
        response = c.do_request(
            f"{c.prefix}://{container.manifest_url()}",
            "HEAD",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        print(response.headers["Docker-Content-Digest"])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
