"""``IdentityCache``: built once per live object, rebuilt for another key, dropped when the object is freed;
and the caches that use it (KD-trees of points, the support surfaces' object views of a snapshot)."""
import gc
from dataclasses import replace

import numpy as np
import pytest
from surface_fixtures import tabletop_scene

from spatial_vlm_ros.core.identity_cache import IdentityCache
from spatial_vlm_ros.core.support_surface import SurfaceParams, surface_objects, with_surfaces


def test_values_are_built_once_per_object_and_key_and_go_with_the_object():
    cache: IdentityCache[float] = IdentityCache()
    calls = []

    def make(value):
        def build():
            calls.append(value)
            return value
        return build

    a, b = np.zeros(3), np.zeros(3)                   # equal values, different objects
    assert cache.get(a, make(1.0)) == 1.0 and cache.get(a, make(2.0)) == 1.0
    assert cache.get(b, make(3.0)) == 3.0             # identity, not equality
    assert cache.get(a, make(4.0), key="other") == 4.0   # another key replaces the entry
    assert calls == [1.0, 3.0, 4.0] and a in cache and len(cache) == 2
    del a
    gc.collect()
    assert len(cache) == 1                            # freed with its object
    plain = [1, 2]                                    # not weak-referenceable: built every time, never kept
    assert cache.get(plain, make(5.0)) == 5.0 and cache.get(plain, make(6.0)) == 6.0 and len(cache) == 1


def test_a_snapshot_builds_its_surface_views_once():
    scene = tabletop_scene()
    table = surface_objects(scene)[0]
    assert surface_objects(scene)[0] is table and with_surfaces(scene)[-1] is table
    assert surface_objects(replace(scene))[0] is not table            # another snapshot: its own views
    other = SurfaceParams(thickness_m=0.05)
    thick = surface_objects(scene, other)[0]
    assert thick is not table and thick.size[2] == pytest.approx(0.05)
    assert surface_objects(scene)[0].size[2] == pytest.approx(0.01)
