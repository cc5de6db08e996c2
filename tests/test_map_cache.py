"""The teacher-map cache (resumable float16 shards) and the ``python -m benchmarks.explain`` CLI."""
from __future__ import annotations

import json

import pytest
import torch

from core.artifacts import ArtifactStore, CorruptShard, read_shard
from map_checks import FLOAT16_REL, assert_same_maps
from methods.context import TeacherConfig
from datasets.base import DataBundle, Split
from methods.backbones import create_backbone
from methods.explainers import create_explainer
from methods.explainers.captum_explainers import Saliency
from methods.teacher_maps import cached_maps


def make_data(n: int = 23, seed: int = 0) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    train = Split(torch.randint(0, 256, (n, 3, 12, 12), generator=g, dtype=torch.uint8),
                  torch.randint(0, 4, (n,), generator=g))
    test = Split(torch.randint(0, 256, (5, 3, 12, 12), generator=g, dtype=torch.uint8),
                 torch.randint(0, 4, (5,), generator=g))
    return DataBundle("toy", ["a", "b", "c", "d"], train, test, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_backbone("tiny", 4, 12).eval()


@pytest.fixture
def spy(monkeypatch):
    """Counts the images the saliency explainer is asked to explain (i.e. work done, not loaded)."""
    calls: list[int] = []
    original = Saliency.explain

    def counting(self, model, x, target):
        calls.append(int(x.shape[0]))
        return original(self, model, x, target)

    monkeypatch.setattr(Saliency, "explain", counting)
    return calls


TEACHER = TeacherConfig("saliency", {}, batch_images=10)  # 23 images -> shards of 10, 10, 3


def maps_dir(root):
    dirs = list((root / "maps").iterdir())
    assert len(dirs) == 1
    return dirs[0]


def test_maps_match_the_explainer_and_are_float16_rounded(tmp_path, spy):
    data, model = make_data(), make_model()
    maps = cached_maps(model, data, "train", TEACHER, "m0", ArtifactStore(tmp_path), progress=False)
    assert maps.shape == (23, 3, 12, 12) and maps.dtype == torch.float32 and maps.device == data.device
    assert spy == [10, 10, 3]
    direct = create_explainer("saliency").explain(model, data.normalize(data.train.images), data.train.labels)
    assert_same_maps(direct, maps, rel=FLOAT16_REL)
    files = sorted(p.name for p in maps_dir(tmp_path).iterdir())
    assert files == ["shard_00000.pt", "shard_00001.pt", "shard_00002.pt", "spec.json"]  # no temporary files
    spec = json.loads((maps_dir(tmp_path) / "spec.json").read_text())
    assert spec["model"] == "m0" and spec["explainer"]["name"] == "saliency" and spec["shards"] == 3


def test_second_call_computes_nothing(tmp_path, spy):
    data, model = make_data(), make_model()
    first = cached_maps(model, data, "train", TEACHER, "m0", ArtifactStore(tmp_path), progress=False)
    assert sum(spy) == 23
    store = ArtifactStore(tmp_path)  # a fresh process: nothing in memory
    second = cached_maps(model, data, "train", TEACHER, "m0", store, progress=False)
    assert sum(spy) == 23
    assert not [k for k in store.created if k.startswith("maps/")]
    assert torch.equal(first, second)


def test_resume_computes_only_missing_shards(tmp_path, spy):
    data, model = make_data(), make_model()
    first = cached_maps(model, data, "train", TEACHER, "m0", ArtifactStore(tmp_path), progress=False)
    (maps_dir(tmp_path) / "shard_00001.pt").unlink()  # as if killed while computing shard 1
    spy.clear()
    store = ArtifactStore(tmp_path)
    again = cached_maps(model, data, "train", TEACHER, "m0", store, progress=False)
    assert spy == [10]
    assert [k.rsplit("/", 1)[1] for k in store.created] == ["1"]
    assert torch.equal(first, again)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "swap"])
def test_corrupt_shard_is_detected_and_rebuilt(tmp_path, spy, damage):
    data, model = make_data(), make_model()
    first = cached_maps(model, data, "train", TEACHER, "m0", ArtifactStore(tmp_path), progress=False)
    d = maps_dir(tmp_path)
    target = d / "shard_00001.pt"
    raw = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(raw[:len(raw) // 2])
    elif damage == "flip":
        target.write_bytes(raw[:-10] + bytes([raw[-10] ^ 0xFF]) + raw[-9:])
    elif damage == "empty":
        target.write_bytes(b"")
    else:  # a valid shard, but of another position
        target.write_bytes((d / "shard_00000.pt").read_bytes())
    spy.clear()
    again = cached_maps(model, data, "train", TEACHER, "m0", ArtifactStore(tmp_path), progress=False)
    assert spy == [10]
    assert torch.equal(first, again)
    read_shard(target, d.name, 1, 10, 20)  # intact again


def test_read_shard_rejects_wrong_key(tmp_path):
    data, model = make_data(), make_model()
    cached_maps(model, data, "train", TEACHER, "m0", ArtifactStore(tmp_path), progress=False)
    with pytest.raises(CorruptShard, match="header"):
        read_shard(maps_dir(tmp_path) / "shard_00000.pt", "another-key", 0, 0, 10)


@pytest.mark.parametrize("change", ["model_key", "weights", "option", "explainer", "shard_size", "data", "split"])
def test_changes_invalidate(tmp_path, spy, change):
    data, model = make_data(), make_model()
    base = cached_maps(model, data, "train", TEACHER, "m0", ArtifactStore(tmp_path), progress=False)
    spy.clear()
    kwargs = dict(model=model, data=data, split="train", teacher=TEACHER, model_key="m0")
    if change == "model_key":
        kwargs["model_key"] = "m1"
    elif change == "weights":  # same key, different weights (e.g. a retrained model under a stale key)
        kwargs["model"] = make_model(seed=1)
    elif change == "option":
        kwargs["teacher"] = TeacherConfig("saliency", {"output": "logit"}, batch_images=10)
    elif change == "explainer":
        kwargs["teacher"] = TeacherConfig("occlusion", {"window": 3, "stride": 3}, batch_images=10)
    elif change == "shard_size":
        kwargs["teacher"] = TeacherConfig("saliency", {}, batch_images=7)
    elif change == "data":
        kwargs["data"] = make_data(seed=1)
    else:
        kwargs["split"] = "test"
    store = ArtifactStore(tmp_path)
    out = cached_maps(artifacts=store, progress=False, **kwargs)
    assert [k for k in store.created if k.startswith("maps/")], "nothing was recomputed"
    assert len(list((tmp_path / "maps").iterdir())) == 2
    if change in ("model_key", "shard_size"):
        assert torch.equal(out, base)  # same model and maps, stored under a new key
    elif change in ("weights", "option", "data", "explainer"):
        assert not torch.equal(out, base)
    if change in ("model_key", "weights", "option", "shard_size", "data"):
        assert sum(spy) == len(kwargs["data"].train)


def test_in_memory_store(spy):
    data, model = make_data(), make_model()
    store = ArtifactStore(None)
    a = cached_maps(model, data, "train", TEACHER, "m0", store, progress=False)
    b = cached_maps(model, data, "train", TEACHER, "m0", store, progress=False)
    assert sum(spy) == 23 and torch.equal(a, b)


def test_partition_through_the_cache(tmp_path):
    data, model = make_data(6), make_model()
    teacher = TeacherConfig("partition", {"max_evals": 60}, batch_images=4)
    maps = cached_maps(model, data, "train", teacher, "m0", ArtifactStore(tmp_path), progress=False)
    direct = create_explainer("partition", max_evals=60).explain(model, data.normalize(data.train.images),
                                                                 data.train.labels)
    assert_same_maps(direct, maps, rel=FLOAT16_REL)


# ---------------------------------------------------------------- the CLI

def run_cli(args, capsys):
    from benchmarks.explain import main

    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_help(capsys):
    from benchmarks.explain import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--explainer" in out and "--set" in out and "examples" in out and "partition" in out


@pytest.mark.parametrize("args,word", [(["--dataset", "nope"], "dataset"), (["--backbone", "nope"], "backbone"),
                                       (["--explainer", "nope"], "explainer"), (["--set", "bogus=1"], "bogus"),
                                       (["--train", "bogus=1"], "bogus"), (["--set", "noequals"], "key=value")])
def test_cli_bad_names_exit_2_without_traceback(tmp_path, capsys, args, word):
    code, out, err = run_cli(args + ["--out", str(tmp_path), "--quiet"], capsys)
    assert code == 2
    assert word in err and "Traceback" not in err and err.startswith("error:")


def test_cli_computes_then_resumes(tmp_path, capsys):
    args = ["--dataset", "digits", "--backbone", "tiny", "--explainer", "saliency", "--limit-train", "40",
            "--train", "epochs=1", "--train", "max_steps_per_epoch=2", "--batch-images", "16",
            "--out", str(tmp_path), "--quiet"]
    code, out, _ = run_cli(args, capsys)
    assert code == 0
    report = json.loads(out)
    assert report["shards_computed"] == 3 and report["maps_shape"] == [40, 3, 32, 32]
    shard_dir = tmp_path / "maps" / report["maps_dir"].rsplit("/", 1)[1]
    assert len(list(shard_dir.glob("shard_*.pt"))) == 3
    (shard_dir / "shard_00002.pt").unlink()
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and json.loads(out)["shards_computed"] == 1
    code, out, _ = run_cli(args, capsys)
    assert json.loads(out)["shards_computed"] == 0


def test_maps_without_a_store_are_exact_uncached_and_silent(caplog):
    """wae-shap's test-time maps: part of a prediction, so full precision, nothing kept, no progress lines."""
    from methods.teacher_maps import teacher_maps

    data, model = make_data(), make_model()
    x = data.normalize(data.train.images)
    caplog.set_level("INFO", logger="core.progress")
    maps, key = teacher_maps(model, x, data.train.labels, TEACHER)
    assert key == "" and maps.dtype == torch.float32
    torch.testing.assert_close(maps, create_explainer("saliency").explain(model.eval(), x, data.train.labels))
    assert not [r for r in caplog.records if r.name == "core.progress"]
    stored, key = teacher_maps(model, x, data.train.labels, TEACHER, store=ArtifactStore(None))
    assert key and [r for r in caplog.records if r.name == "core.progress"]  # a cached computation reports
    assert_same_maps(stored, maps, rel=FLOAT16_REL)  # the store holds float16
