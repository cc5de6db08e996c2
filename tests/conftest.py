import pytest
import torch

from methods.context import BackboneConfig, FitContext, TeacherConfig
from methods.engine import Engine, TrainConfig
from datasets import load_dataset
from markers import apply_gpu_marker

pytest_plugins = ["pytester"]  # tests/test_markers.py runs small pytest sessions


def pytest_collection_modifyitems(config, items):
    apply_gpu_marker(items, torch.cuda.is_available())


@pytest.fixture(scope="session")
def synthetic():
    return load_dataset("synthetic")


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core CPU: intra-op threads only add contention (10-40x slower when loaded).

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_synthetic(synthetic):
    """96 training and 24 test images of `synthetic`: enough for a few training steps per method."""
    return synthetic.limit(train=96, test=24)


@pytest.fixture
def small_synthetic(synthetic):
    return synthetic.limit(train=200, test=50, seed=0)


@pytest.fixture
def tiny_ctx(small_synthetic):
    """A FitContext on a tiny backbone and a small slice of `synthetic`: seconds per method."""
    torch.manual_seed(0)
    engine = Engine(TrainConfig(epochs=1, batch_size=32, max_steps_per_epoch=4), seed=0, progress=False)
    return FitContext(small_synthetic, engine, BackboneConfig("tiny"), seed=0,
                      teacher=TeacherConfig("saliency", {}, batch_images=100))
