"""The Ray Data engine on a tiny embedded local cluster (num_cpus=2) gives the same rows as the local engine.
Ray starts once for the module (it is slow to start)."""
import numpy as np
import pytest

ray = pytest.importorskip("ray")
datasets = pytest.importorskip("datasets")

from spatial_vlm_ros.synthesis.local import synthesize_to_disk  # noqa: E402

OPTS = {"width": 96, "height": 72}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    local = synthesize_to_disk("analytic", 5, 4, root / "local", **OPTS)
    distributed = synthesize_to_disk("analytic", 5, 4, root / "ray", engine="ray", workers=2, **OPTS)
    assert not ray.is_initialized()          # the embedded cluster was shut down
    return root, local, distributed


def test_ray_rows_equal_local_rows(both):
    root, local, distributed = both
    a = datasets.load_from_disk(str(root / "local"))
    b = datasets.load_from_disk(str(root / "ray"))
    assert a.features == b.features and len(a) == len(b) == local["rows"] == distributed["rows"] > 0
    ta, tb = a.data.table, b.data.table
    for name in ta.column_names:
        ca, cb = ta.column(name).to_pylist(), tb.column(name).to_pylist()
        if name in ("value_m", "sigma_m", "margin_m", "confidence"):
            assert np.array_equal(np.array(ca, float), np.array(cb, float), equal_nan=True), name
        else:
            assert ca == cb, name
    assert distributed["engine"] == "ray" and distributed["frames"] == local["frames"] == 5
    assert {k: v for k, v in distributed.items() if k in ("kinds", "templates")} == \
        {k: v for k, v in local.items() if k in ("kinds", "templates")}
    ray_parquet = datasets.load_dataset("parquet", data_files=str(root / "ray" / "parquet" / "*.parquet"),
                                        split="train", cache_dir=str(root / "cache"))
    assert ray_parquet.features == a.features and sorted(ray_parquet["sample_id"]) == a["sample_id"]
