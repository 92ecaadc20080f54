"""Which parameter overrides reach a node, checked the way rcl applies them (ROS-free).

A node of this package refuses an override that names no parameter it declares (a typo such as
``-p sync.slopp_s:=0.05`` would otherwise run silently on the default) and warns when a ``--params-file``
has no section for it (a file keyed for another node name, or for the name before a remapping, applies
nothing). Section keys follow rcl's rules: a fully qualified node name, with or without the leading ``/``,
where ``*`` stands for one name token and ``**`` for any number (``/**``, ``/**/spatial_perception``), or
namespaces nested as YAML mappings (``robot1: {spatial_perception: {ros__parameters: ...}}``).
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

import yaml

PARAMS_KEY = "ros__parameters"


def unknown_parameter(name: str, known: Iterable[str]) -> str:
    """``"<name>: unknown parameter (closest: <known name>)"``; without the hint when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"{name}: unknown parameter" + (f" (closest: {close[0]})" if close else "")


def params_file_arguments(argv: Sequence[str] | None) -> list[str]:
    """The ``--params-file`` values of ``argv``'s ``--ros-args`` sections (each ends at ``--`` or at the next
    ``--ros-args``), in order."""
    files, inside, args = [], False, list(argv or [])
    for i, arg in enumerate(args):
        if arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside and arg == "--params-file" and i + 1 < len(args):
            files.append(args[i + 1])
    return files


def _pattern(key: str) -> re.Pattern:
    parts = []
    for token in key.strip("/").split("/"):
        if token == "**":
            parts.append(r"(?:/[^/]+)*")
        elif token == "*":
            parts.append(r"/[^/]+")
        else:
            parts.append("/" + re.escape(token))
    return re.compile("".join(parts) or "/")


def section_matches(key: str, fq_name: str) -> bool:
    """Whether the parameter-file key ``key`` addresses the node ``fq_name`` (``/ns/name``)."""
    return bool(_pattern(key).fullmatch("/" + fq_name.lstrip("/")))


def file_sections(doc) -> list[str]:
    """The node keys of a parsed parameter file that hold ``ros__parameters`` (nested namespaces joined)."""
    keys: list[str] = []

    def walk(tree, prefix: str) -> None:
        for key, value in tree.items():
            if not isinstance(value, dict):
                continue
            name = f"{prefix}/{str(key).strip('/')}" if prefix else str(key)
            if PARAMS_KEY in value:
                keys.append(name)
            else:
                walk(value, name)

    if isinstance(doc, dict):
        walk(doc, "")
    return keys


def unmatched_file_warning(path: str, fq_name: str) -> str | None:
    """A warning when the parameter file ``path`` has no section for the node ``fq_name``, else None (also
    for a file that cannot be read: rcl has refused it already)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    sections = file_sections(doc)
    if any(section_matches(key, fq_name) for key in sections):
        return None
    return (f"parameter file {path} has no section for node {fq_name} (sections: {', '.join(sections) or 'none'}): "
            f"none of its values apply; key it '/**' or '/**/{fq_name.rsplit('/', 1)[-1]}'")
