"""Container id → its name and Kubernetes pod, from the runtimes' own state files.

The cgroup path gives only a container's id. The names an operator knows are in
the runtime's state on the host: one row per runtime in :data:`_SOURCES`
(a path template and the keys that name the container and its pod). A file that
is missing or unreadable just means "no name": the id is used instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lumen_sniff.capture.service import ContainerInfo

__all__ = ["container_info"]

# (path template under the host root, container-name keys, pod-name keys).
# Keys are looked up at the top level and under "annotations" / "Config.Labels".
_SOURCES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # Kubernetes on containerd (CRI): the OCI bundle's annotations.
    (
        "run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}/config.json",
        ("io.kubernetes.cri.container-name",),
        ("io.kubernetes.cri.sandbox-name",),
    ),
    # Kubernetes on CRI-O.
    (
        "run/containers/storage/overlay-containers/{id}/userdata/config.json",
        ("io.kubernetes.container.name",),
        ("io.kubernetes.pod.name",),
    ),
    # Docker.
    ("var/lib/docker/containers/{id}/config.v2.json", ("Name",), ("io.kubernetes.pod.name",)),
    # nerdctl / plain containerd.
    (
        "run/containerd/io.containerd.runtime.v2.task/default/{id}/config.json",
        ("nerdctl/name",),
        (),
    ),
)
_MAX_STATE_BYTES = 1 << 20


def container_info(container_id: str | None, *, root: Path = Path("/")) -> ContainerInfo:
    """Name and pod of a container, from the first runtime that knows it.

    Args:
        container_id: 64-hex-digit id (None outside containers).
        root: The host's root directory (a temporary tree in tests).

    Returns:
        What was found; the id alone when no runtime state names it.
    """
    if not container_id:
        return ContainerInfo()
    for template, name_keys, pod_keys in _SOURCES:
        doc = _read_json(root / template.format(id=container_id))
        if doc is None:
            continue
        name, pod = _lookup(doc, name_keys), _lookup(doc, pod_keys)
        if name or pod:
            return ContainerInfo(
                container_id=container_id, name=name.lstrip("/") if name else None, pod=pod
            )
    return ContainerInfo(container_id=container_id)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            doc = json.loads(f.read(_MAX_STATE_BYTES))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _lookup(doc: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    config = doc.get("Config")
    labels = config.get("Labels") if isinstance(config, dict) else None
    places = [doc, doc.get("annotations"), labels]
    for key in keys:
        for place in places:
            if isinstance(place, dict):
                value = place.get(key)
                if isinstance(value, str) and value:
                    return value
    return None
