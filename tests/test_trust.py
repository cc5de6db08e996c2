"""A shared cache is untrusted input: nothing pickled in it can run code, whatever kind of artifact it poses as."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from core.artifacts import ArtifactStore, shard_path, spec_key
from methods.context import TeacherConfig
from datasets.base import DataBundle, Split, fingerprint
from methods.backbones import create_backbone
from methods.teacher_maps import MAPS_KIND, cached_maps, maps_key

MARKER: Path | None = None


class Exploit:
    """Unpickling this calls ``Path.touch`` on the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def planted_body(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"rows": [Exploit(marker)], "state": Exploit(marker)}, buffer)
    return buffer.getvalue()


def plant_artifact(store: ArtifactStore, kind: str, spec: dict, marker: Path) -> Path:
    """An artifact file exactly as the store writes one (valid header and checksum), with a hostile pickle."""
    body = planted_body(marker)
    header = json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "spec": spec}).encode()
    path = store.path(kind, spec_key(kind, spec))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(len(header).to_bytes(8, "little") + header + body)
    return path


def test_the_exploit_really_runs_code_under_plain_pickle(tmp_path):
    marker = tmp_path / "pwned"
    torch.load(io.BytesIO(planted_body(marker)), weights_only=False)
    assert marker.exists()  # so the tests below would notice if the store unpickled it


def test_planted_cell_and_stage1_artifacts_run_nothing_and_are_rebuilt(tmp_path, caplog):
    for kind, payload in (("cell", {"rows": [{"metric": "accuracy", "value": 1.0}]}),
                          ("stage1", {"state": {"w": torch.ones(2)}, "fit": {"best_val_accuracy": 0.5}})):
        marker = tmp_path / f"pwned-{kind}"
        store = ArtifactStore(tmp_path / "cache")
        spec = {"what": kind}
        plant_artifact(store, kind, spec, marker)
        calls = []
        with caplog.at_level("WARNING"):
            result, _ = store.get_or_create(kind, spec, lambda: calls.append(1) or payload)
        assert not marker.exists(), f"the planted {kind} artifact ran code"
        assert calls == [1] and result == payload  # rebuilt
        assert "refused to load" in caplog.text
        # the rebuilt file is a plain one that loads in a fresh store
        again, _ = ArtifactStore(tmp_path / "cache").get_or_create(kind, spec, lambda: calls.append(2))
        assert calls == [1] and again["rows" if kind == "cell" else "fit"] == payload["rows" if kind == "cell"
                                                                                   else "fit"]


def test_numpy_values_are_stored_as_plain_values(tmp_path):
    store = ArtifactStore(tmp_path)
    payload = {"per_image": np.array([True, False]), "value": np.float64(0.5), "n": np.int64(3)}
    store.get_or_create("cell", {"x": 1}, lambda: payload)
    loaded, _ = ArtifactStore(tmp_path).get_or_create("cell", {"x": 1}, lambda: None)
    assert torch.equal(loaded["per_image"], torch.tensor([True, False]))
    assert type(loaded["value"]) is float and type(loaded["n"]) is int


def test_planted_map_shard_runs_nothing_and_is_recomputed(tmp_path):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8)
    labels = torch.arange(6) % 3
    data = DataBundle("toy", ["a", "b", "c"], Split(images, labels), Split(images, labels),
                      (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    model = create_backbone("tiny", 3, 12).eval()
    teacher = TeacherConfig("saliency", {}, batch_images=3)
    store = ArtifactStore(tmp_path / "cache")
    key = maps_key(model, data.train.images, data.train.labels, teacher, "m0", fingerprint(data))
    directory = tmp_path / "cache" / MAPS_KIND / key
    directory.mkdir(parents=True)
    marker = tmp_path / "pwned-maps"
    body = planted_body(marker)
    header = json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "key": key, "index": 0, "start": 0,
                         "stop": 3, "shape": [3, 3, 12, 12]}).encode()
    shard_path(directory, 0).write_bytes(len(header).to_bytes(8, "little") + header + body)
    stats: dict = {}
    maps = cached_maps(model, data, "train", teacher, "m0", store, progress=False, stats=stats)
    assert not marker.exists(), "the planted map shard ran code"
    assert maps.shape == (6, 3, 12, 12) and torch.isfinite(maps).all()
    assert f"{MAPS_KIND}/{key}/0" in store.created  # recomputed, not loaded


# ------------------------------------------------------------------ one run folder, one consistent result
def failing_plugin(tmp_path, monkeypatch):
    (tmp_path / "failing_plugin.py").write_text(
        "from methods import register_method\n"
        "from methods.baseline import Baseline\n"
        "@register_method('always-fails')\n"
        "class AlwaysFails(Baseline):\n"
        "    '''Its fit raises.'''\n"
        "    def fit(self, ctx):\n"
        "        raise RuntimeError('this cell fails on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_run_whose_cells_all_fail_leaves_no_earlier_results(tmp_path, monkeypatch):
    import sys

    import pandas as pd

    from benchmarks.run import main
    from methods.registry import _METHODS
    from test_runner import FAST

    out = tmp_path / "r"
    (out / "figures").mkdir(parents=True)
    stale = ["table2.md", "table2.csv", "stats.csv", "explanations.md", "explanations.csv", "per_image.csv",
             "timings.md", "figures/morf_old.png"]
    for name in stale:
        (out / name).write_text("from an earlier run")
    (out / "artifacts").mkdir()
    (out / "artifacts" / "keep.txt").write_text("the cache is never cleared")
    failing_plugin(tmp_path, monkeypatch)
    try:
        code = main([*FAST, "--plugin", "failing_plugin", "--methods", "always-fails", "--datasets", "digits",
                     "--out", str(out)])
    finally:
        _METHODS.pop("always-fails", None)
        sys.modules.pop("failing_plugin", None)
    assert code == 1
    assert [name for name in stale if (out / name).exists()] == []
    rows = pd.read_csv(out / "rows.csv", keep_default_na=False)
    assert set(rows["method"]) == {"always-fails"} and rows["error"].str.contains("on purpose").all()
    assert (out / "artifacts" / "keep.txt").exists()


def test_a_second_run_into_a_busy_folder_stops_at_once_naming_the_first(tmp_path, capsys):
    from benchmarks.run import main
    from benchmarks.run_folder import claim_run_folder
    from test_runner import FAST

    out = tmp_path / "busy"
    holder = claim_run_folder(out)  # as a first run would hold it
    try:
        (out / "rows.csv").write_text("the first run's rows\n")
        code = main([*FAST, "--methods", "baseline", "--datasets", "digits", "--out", str(out)])
    finally:
        holder.close()
    assert code == 2
    err = capsys.readouterr().err
    assert "another run is writing to" in err and f"pid {__import__('os').getpid()}" in err
    assert (out / "rows.csv").read_text() == "the first run's rows\n"  # nothing lost, nothing written
    assert sorted(p.name for p in out.iterdir()) == [".run.lock", "rows.csv"]


def test_result_files_honour_the_umask(tmp_path):
    import os
    import stat

    from core.artifacts import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.csv", b"x")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "b.csv", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.csv").stat().st_mode) == 0o600
