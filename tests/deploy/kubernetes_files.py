"""The Kubernetes files of ``deploy/kubernetes`` as the tests read them: the settings the
ConfigMaps carry, the objects of the base, and every PromQL query that the dashboard and the
autoscaler run, with the metric names they use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BASE", "DEPLOY", "base_objects", "metric_names", "queries", "settings_file"]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
BASE = DEPLOY / "base"

#: A metric name in a query: our prefix, not followed by "(" (a function) or "=" (a label).
_METRIC = re.compile(r"\b(xtts_[a-z_]+)\b(?!\s*[(=])")


def base_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of the base's resource files, by ``(kind, name)``."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    objects = {}
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((BASE / resource).read_text()):
            objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def settings_file(service: str) -> dict[str, Any]:
    """The settings YAML the base's ConfigMap gives ``service`` (broker or balancer)."""
    data: dict[str, Any] = yaml.safe_load((BASE / "config" / f"{service}.yaml").read_text())
    return data


def queries() -> dict[str, str]:
    """Every PromQL expression of the dashboard and the autoscaler, by where it is."""
    found = {}
    dashboard = json.loads((DEPLOY / "components/monitoring/dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found[f"dashboard: {panel['title']} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found[f"dashboard variable {variable['name']}"] = variable["query"]
    scaled = yaml.safe_load((DEPLOY / "components/autoscaling/scaled-object.yaml").read_text())
    for index, trigger in enumerate(scaled["spec"]["triggers"]):
        found[f"autoscaler trigger {index}"] = trigger["metadata"]["query"]
    return found


def metric_names(query: str) -> set[str]:
    """The metric names ``query`` reads."""
    return set(_METRIC.findall(query))
