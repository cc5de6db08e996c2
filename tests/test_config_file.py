"""--config FILE.toml, <out>/resolved.toml, --version, --help (issue 13 item 6)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

import benchmarks.scores  # noqa: F401  (declares every score)
from benchmarks.config_file import dumps, load_config_file, resolved_settings
from benchmarks.profiles import PROFILES
from benchmarks.run import build_parser, config_from_args, main
from core.scores import kind
from test_runner import FAST

COMPARED = ("profile", "seeds", "pretrained", "train", "teacher", "input_size", "method_options", "limit_train",
            "limit_test", "explain_eval", "explanation_images", "morf", "stage1_grid", "method_grid", "data_root",
            "download", "executor")


def cfg_of(*argv: str):
    return config_from_args(build_parser().parse_args(list(argv)))


def same_settings(a, b) -> None:
    for name in COMPARED:
        assert getattr(a, name) == getattr(b, name), name


def test_resolved_settings_read_back_to_the_same_config(tmp_path):
    cfg = cfg_of("--profile", "paper", "--no-tune", "--seeds", "0,2", "--set", "tune.stage1.lr=[0.001,0.01]",
                 "--set", "method.impactx.lam=0.4", "--set", "method.wae-shap.explainer_options={'max_evals': 50}",
                 "--set", "teacher.options.max_evals=300", "--set", "input_size.timm:resnet18=64",
                 "--set", "limit_train=500", "--set", "morf.noise_draws=3", "--no-pretrained")
    flat = resolved_settings(cfg, PROFILES["paper"](), ["baseline", "impactx"], ["lenet5"], ["cifar10"], "cpu")
    path = tmp_path / "resolved.toml"
    path.write_text(dumps(flat, "a header"))
    again = cfg_of("--config", str(path))
    same_settings(cfg, again)
    assert again.stage1_grid == {"lr": (0.001, 0.01)} and again.method_grid == {}  # the paper's grids stay off
    assert again.methods == ("baseline", "impactx") and again.device == "cpu"


def test_tables_and_flat_keys_mean_the_same_and_flags_override_the_file(tmp_path):
    nested = tmp_path / "nested.toml"
    nested.write_text('profile = "smoke"\nseeds = [1, 2]\nmethods = "baseline,impactx"\n\n[train]\nepochs = 5\n'
                      'lr = 0.01\n\n[method.impactx]\nlam = 0.3\n\n[teacher]\nexplainer = "saliency"\n')
    flat = tmp_path / "flat.toml"
    flat.write_text('seeds = [1, 2]\nmethods = ["baseline", "impactx"]\n"train.epochs" = 5\n"train.lr" = 0.01\n'
                    '"method.impactx.lam" = 0.3\n"teacher.explainer" = "saliency"\n')
    a, b = cfg_of("--config", str(nested)), cfg_of("--config", str(flat))
    same_settings(a, b)
    assert a.train.epochs == 5 and a.method_options["impactx"] == {"lam": 0.3} and a.seeds == (1, 2)
    assert a.teacher.explainer == "saliency" and a.teacher.options == {}
    c = cfg_of("--config", str(nested), "--set", "train.epochs=2", "--seeds", "3", "--methods", "abn")
    assert c.train.epochs == 2 and c.train.lr == 0.01 and c.seeds == (3,) and c.methods == ("abn",)


@pytest.mark.parametrize("text,message", [
    ('"train.nosuch" = 1\n', r"bad.toml: unknown key 'train.nosuch'"),
    ("[train\nepochs = 1\n", r"bad.toml: not valid TOML"),
    ("datasets = []\n", r"bad.toml: datasets names nothing"),
    ("download = 3\n", r"bad.toml: download = 3 has the wrong type"),
    ('[train]\nepochs = "many"\n', r"bad.toml: train.epochs: expected an integer"),
    (None, r"bad.toml: no such file"),
])
def test_a_bad_settings_file_exits_2_naming_it(tmp_path, capsys, text, message):
    import re

    path = tmp_path / "bad.toml"
    if text is not None:
        path.write_text(text)
    code = main(["--config", str(path), "--out", str(tmp_path / "r"), *FAST, "--methods", "baseline"])
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err), err
    assert not (tmp_path / "r").exists()


def test_a_run_is_reproduced_from_its_resolved_toml(tmp_path):
    first = tmp_path / "first"
    assert main(["--out", str(first), *FAST, "--methods", "baseline,impactx", "--datasets", "digits",
                 "--set", "method.impactx.lam=0.5"]) == 0
    assert load_config_file(first / "resolved.toml")[0]["methods"] == ["baseline", "impactx"]
    second = tmp_path / "second"
    assert main(["--config", str(first / "resolved.toml"), "--out", str(second), "--no-progress"]) == 0
    assert not (second / "artifacts").samefile(first / "artifacts")  # recomputed, not loaded from the first run

    def stable(out):
        rows = pd.read_csv(out / "rows.csv")
        timing = rows.metric.map(kind) == "cost"  # wall times differ between runs; every cost row is declared so
        return rows[~timing].reset_index(drop=True)

    pd.testing.assert_frame_equal(stable(first), stable(second))
    assert (first / "resolved.toml").read_text() == (second / "resolved.toml").read_text()


def test_version_and_help_name_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "impactx-bench 0.1.0"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "impactx-bench" in text and "--config" in text and "--dry-run" in text


def test_resolved_toml_is_written_with_the_planned_names(tmp_path):
    out = tmp_path / "r"
    assert main(["--out", str(out), *FAST, "--methods", "baseline", "--datasets", "dig*",
                 "--set", "explain_eval=false"]) == 0
    run_keys, settings = load_config_file(out / "resolved.toml")
    assert run_keys["datasets"] == ["digits"] and run_keys["backbones"] == ["tiny"] and run_keys["seeds"] == [0]
    assert ("explain_eval", False) in settings and ("train.max_steps_per_epoch", 3) in settings
    assert dataclasses.asdict(cfg_of("--config", str(out / "resolved.toml")).train)["epochs"] == 1
