"""``Scene``: one immutable snapshot of the scene memory, the input of every spatial query.

Object centers are in the camera optical frame of the latest frame (x right, y down, z forward, metres);
boxes are in that frame's gravity frame (z up, metres), given by ``gravity``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .gravity_frame import GravityFrame
from .observation import TrackedObject


@dataclass(frozen=True)
class Scene:
    """The objects known at ``stamp`` (seconds) and the gravity frame their boxes are expressed in.

    ``SceneMemory`` builds one per update and never mutates it or its objects afterwards (their arrays are
    read-only), so readers may hold a snapshot for as long as they like without locking.
    """

    objects: tuple[TrackedObject, ...] = ()
    gravity: GravityFrame = field(default_factory=GravityFrame.camera_default)
    stamp: float = 0.0

    def center_gravity(self, obj: TrackedObject) -> np.ndarray:
        """(3,) center of ``obj`` in the gravity frame (metres, z up)."""
        return self.gravity.to_gravity(obj.center)

    def by_id(self, object_id: str) -> TrackedObject | None:
        """The object with this exact id, or None."""
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        return None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(obj.id for obj in self.objects)

    def __len__(self) -> int:
        return len(self.objects)
