"""The rosbags type store used to write and read bags: ROS 2 Kilted's standard messages plus any message
type found as a ``.msg`` file (this package's ``spatial_vlm_interfaces``, or any package on
``AMENT_PREFIX_PATH``), so bags carry full message definitions (MCAP schemas) and open in Foxglove.

No ROS installation is needed: ``.msg`` files are read from the source tree or from ``share/<pkg>/msg``.
"""
from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from spatial_vlm_ros.core.errors import InputError

INTERFACES_PACKAGE = "spatial_vlm_interfaces"
_REPO_ROOT = Path(__file__).resolve().parents[2]
_lock = threading.Lock()


def _msg_search_dirs(package: str) -> list[Path]:
    """Folders that may hold ``<package>/msg/*.msg``: the source tree first, then ament prefixes."""
    dirs = [_REPO_ROOT / package / "msg"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share" / package / "msg")
    return dirs


def find_msg_file(msgtype: str) -> Path | None:
    """``pkg/msg/Name`` -> path of ``Name.msg`` in a known location, or None."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        return None
    for folder in _msg_search_dirs(parts[0]):
        path = folder / f"{parts[2]}.msg"
        if path.is_file():
            return path
    return None


def register_msg_type(store: Typestore, msgtype: str) -> None:
    """Add ``msgtype`` (and the custom types it uses) to ``store`` from ``.msg`` files.

    Raises InputError when a definition cannot be found."""
    with _lock:
        _register(store, msgtype, set())


def _register(store: Typestore, msgtype: str, seen: set[str]) -> None:
    if msgtype in store.types or msgtype in seen:
        return
    seen.add(msgtype)
    path = find_msg_file(msgtype)
    if path is None:
        raise InputError(f"no message definition for '{msgtype}' (looked for {msgtype.split('/')[-1]}.msg in "
                         "the source tree and AMENT_PREFIX_PATH)")
    types = get_types_from_msg(path.read_text(), msgtype)
    for _, fields in types.values():                       # register nested custom types first
        for _, desc in fields:
            for name in _type_names(desc):
                if name not in store.types and "/" in name:
                    _register(store, name, seen)
    store.register(types)


def _type_names(desc) -> list[str]:
    """Message type names referenced by a rosbags field description (nodetype, details)."""
    out = []
    if isinstance(desc, tuple):
        for item in desc:
            if isinstance(item, str) and "/msg/" in item:
                out.append(item)
            elif isinstance(item, tuple):
                out += _type_names(item)
    return out


@functools.lru_cache(maxsize=1)
def typestore() -> Typestore:
    """ROS 2 Kilted types + every ``spatial_vlm_interfaces`` message."""
    store = get_typestore(Stores.ROS2_KILTED)
    for folder in _msg_search_dirs(INTERFACES_PACKAGE):
        if folder.is_dir():
            for path in sorted(folder.glob("*.msg")):
                register_msg_type(store, f"{INTERFACES_PACKAGE}/msg/{path.stem}")
            break
    return store
