"""Every user error: exit 2 before any training, one short message naming the fix, no traceback, nothing written."""
from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.run import main
from test_runner import FAST


def image_tree(root: Path, classes=("cat", "dog"), n=2, train_size=8, test_size=8) -> Path:
    for split, size in (("train", train_size), ("test", test_size)):
        for c, cls in enumerate(classes):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (size, size), (60 * c + i,) * 3).save(root / split / cls / f"{i}.png")
    return root


def one_class(tmp: Path) -> list[str]:
    return ["--datasets", f"imagefolder:{image_tree(tmp / 'one', classes=('cat',))}"]


def empty_class(tmp: Path) -> list[str]:
    root = image_tree(tmp / "empty")
    (root / "train" / "bird").mkdir()
    return ["--datasets", f"imagefolder:{root}"]


def corrupt_image(tmp: Path) -> list[str]:
    root = image_tree(tmp / "corrupt")
    (root / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return ["--datasets", f"imagefolder:{root}"]


def mixed_sizes(tmp: Path) -> list[str]:
    return ["--datasets", f"imagefolder:{image_tree(tmp / 'mixed', train_size=16, test_size=24)}"]


def not_gzip(tmp: Path) -> list[str]:
    (tmp / "fake.tar.gz").write_text("this is not a gzip file")
    return ["--datasets", f"imagefolder:{tmp / 'fake.tar.gz'}", "--data-root", str(tmp / "dataroot")]


def traversal_archive(tmp: Path) -> list[str]:
    archive = tmp / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = b"escaped"
        info = tarfile.TarInfo("../outside.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return ["--datasets", f"imagefolder:{archive}", "--data-root", str(tmp / "dataroot")]


def out_is_a_file(tmp: Path) -> list[str]:
    (tmp / "r").write_text("a file where the run folder should go")
    return []


def out_inside_a_file(tmp: Path) -> list[str]:
    (tmp / "plain").write_text("a file")
    return ["--out", str(tmp / "plain" / "run")]


CASES = [  # (id, args or setup(tmp) -> args, message pattern)
    ("unknown method", ["--methods", "nosuch"], r"valid methods: .*baseline"),
    ("unknown backbone", ["--backbones", "resnet9000"], r"valid backbones: .*lenet5"),
    ("unknown dataset", ["--datasets", "nosuch"], r"valid datasets: .*digits"),
    ("empty methods", ["--methods", ""], r"--methods '' names nothing"),
    ("only commas", ["--methods", ","], r"--methods ',' names nothing"),
    ("empty backbones", ["--backbones", ""], r"--backbones '' names nothing"),
    ("negative seed", ["--seeds", "-1"], r"--seeds must be integers >= 0"),
    ("repeated seed", ["--seeds", "0,0"], r"--seeds repeats 0"),
    ("seeds not integers", ["--seeds", "a,b"], r"--seeds expects integers"),
    ("unknown train key", ["--set", "train.nosuch=1"], r"unknown key 'train.nosuch'. Valid keys: .*train.epochs"),
    ("epochs not a number", ["--set", "train.epochs=many"], r"expected an integer"),
    ("zero epochs", ["--set", "train.epochs=0"], r"must be positive"),
    ("val fraction out of range", ["--set", "train.val_fraction=1.5"], r"val_fraction must be in \[0, 1\)"),
    ("unknown method option", ["--set", "method.baseline.nosuch=1"], r"has no option 'nosuch'"),
    ("negative lambda", ["--methods", "impactx", "--set", "method.impactx.lam=-1"], r"lam must be a number >= 0"),
    ("lambda not a number", ["--methods", "impactx", "--set", "method.impactx.lam=abc"],
     r"method.impactx.lam='abc': expected float"),
    ("unknown decoder", ["--methods", "impactx", "--set", "method.impactx.decoder=huge"],
     r"decoder must be one of \('paper', 'small', 'tiny'\)"),
    ("zero stage-2 epochs", ["--methods", "impactx", "--set", "method.impactx.epochs=0"], r"epochs must be an integer"),
    ("augment not a bool", ["--methods", "baseline-long", "--set", "method.baseline-long.augment=maybe"],
     r"augment='maybe': expected bool"),
    ("unknown explainer", ["--set", "teacher.explainer=shapp"], r"unknown explainer 'shapp'; valid: .*saliency"),
    ("unknown explainer option", ["--set", "teacher.options.nosuch=3"], r"has no option"),
    ("grid not a list", ["--set", "tune.stage1.lr=0.1"], r"expected a non-empty list"),
    ("grid without validation", ["--set", "tune.stage1.lr=[0.1,0.2]", "--set", "train.val_fraction=0"],
     r"train.val_fraction=0 leaves no validation images"),
    ("method grid without validation", ["--methods", "impactx", "--set", "tune.method.impactx.lam=[0.5,1.0]",
                                        "--set", "train.val_fraction=0"],
     r"train.val_fraction=0 leaves no validation images"),
    ("weights_path for lenet5", ["--backbones", "lenet5", "--set", "weights_path=/tmp/w.pth"],
     r"weights_path applies to timm backbones only"),
    ("unknown morf option", ["--set", "morf.nosuch=1"], r"unknown MoRF options"),
    ("missing plugin", ["--plugin", "no.such.module"], r"could not import plugin"),
    ("out is a file", out_is_a_file, r"--out .* is a file, not a folder"),
    ("out inside a file", out_inside_a_file, r"--out .* is inside .*plain, which is a file"),
    ("read-only cache", ["--cache-dir", "/proc/impactx-bench-test/cache"], r"--cache-dir .* is not writable"),
    ("archive not gzip", not_gzip, r"fake.tar.gz is not a readable .tar.gz"),
    ("archive escapes its folder", traversal_archive, r"evil.tar.gz is not a readable .tar.gz"),
    ("one class", one_class, r"1 class folder\(s\) \(cat\); a classifier needs at least 2"),
    ("empty class folder", empty_class, r"class folder .*bird holds no images"),
    ("corrupt image", corrupt_image, r"cannot read image .*broken.jpg"),
    ("train and test sizes differ", mixed_sizes, r"\(16, 16\) px but test images .* \(24, 24\) px"),
    ("torchvision data offline", ["--datasets", "cifar10", "--data-root", "/nonexistent/place"],
     r"--download.*--data-root"),
]


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("args,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, capsys, args, message):
    extra = args(tmp_path) if callable(args) else args
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main(["--out", str(tmp_path / "r"), *FAST, "--methods", "baseline", "--datasets", "digits", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, f"written: {sorted(set(after) - set(before))}"
    assert not (tmp_path.parent / "outside.txt").exists()
