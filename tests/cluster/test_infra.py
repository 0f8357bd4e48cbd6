"""The deployment files: Ray's cluster-launcher YAML and the KubeRay manifest, checked against
the `delegation` command line (the serve command they run must parse, join the local Ray and
expose the metrics port they declare) and against token authentication."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from delegation.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "infra" / "ray" / "cluster.yaml"
KUBERAY = ROOT / "infra" / "kuberay" / "raycluster.yaml"


def serve_args(argv: list[str]) -> Any:
    """Parse a `delegation serve ...` command with the real parser (exits 2 if it cannot)."""
    start = argv.index("delegation")
    words = []
    for word in argv[start + 1:]:
        if word in (">", "2>", "&", "2>&1") or word.startswith((">", "2>")):
            break
        words.append(word)
    args = build_parser().parse_args(words)
    assert args.command == "serve"
    return args


def test_the_launcher_head_runs_serve_joining_its_own_ray_with_token_auth() -> None:
    config = yaml.safe_load(LAUNCHER.read_text())
    head = config["head_start_ray_commands"]
    [serve] = [shlex.split(c) for c in head if "delegation serve" in c]
    args = serve_args(serve)
    assert args.address == "auto" and args.metrics_port == 9464 and args.config
    assert "RAY_AUTH_MODE=token" in serve
    starts = [c for c in head + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token" in c for c in starts)
    [head_start] = [shlex.split(c) for c in head if "--head" in c]
    port = next(w.split("=")[1] for w in head_start if w.startswith("--port="))
    assert any(f":{port}" in c for c in config["worker_start_ray_commands"])
    assert "~/.ray/auth_token" in config["file_mounts"]  # one token for the whole fleet
    assert any("keys generate" in c for c in config["setup_commands"])  # a key per node


def test_the_kuberay_head_runs_serve_beside_ray_and_exposes_its_metrics() -> None:
    manifest = yaml.safe_load(KUBERAY.read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCluster")
    head = manifest["spec"]["headGroupSpec"]["template"]
    containers = {c["name"]: c for c in head["spec"]["containers"]}
    serve = containers["delegation-serve"]
    args = serve_args(serve["command"])
    assert args.address == "auto" and args.host == "0.0.0.0"
    assert [p["containerPort"] for p in serve["ports"]] == [args.metrics_port]
    assert head["metadata"]["annotations"]["prometheus.io/port"] == str(args.metrics_port)
    # `--address auto` finds the head's Ray through the /tmp/ray they share.
    mounts = {name: {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
              for name, c in containers.items()}
    assert mounts["delegation-serve"]["ray-tmp"] == mounts["ray-head"]["ray-tmp"] == "/tmp/ray"
    workers = [c for group in manifest["spec"]["workerGroupSpecs"]
               for c in group["template"]["spec"]["containers"]]
    for container in [*containers.values(), *workers]:
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "rtfs-ray-token"
