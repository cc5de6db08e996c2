"""Issue 16: ``-m slow`` and ``-m gpu`` select what they claim; the default run is the whole suite."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SLOW = {"tests/test_markers.py::test_slow_and_gpu_markers_select_what_they_claim",
        "tests/test_grid.py::test_ray_executor_gives_the_same_rows_as_local",
        "tests/test_grid.py::test_killed_run_resumes_without_recomputing_and_matches",
        "tests/test_runner.py::test_smoke_end_to_end_writes_rows_and_tables",
        "tests/test_partition_parity.py::test_parity_many_images_lenet32"}
GPU = {"tests/test_partition_parity.py::test_partition_on_cuda_matches_cpu",
       "tests/test_evaluate.py::test_cuda_curves_match_cpu"}


def collected(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode in (0, 5), proc.stdout[-3000:]
    return {line.strip() for line in proc.stdout.splitlines() if "::" in line}


@pytest.mark.slow  # two collections of the whole suite
def test_slow_and_gpu_markers_select_what_they_claim():
    slow, gpu = collected("-m", "slow"), collected("-m", "gpu")
    assert SLOW <= slow and not slow & {"tests/test_tables.py::test_mcnemar_exact"}
    assert gpu == GPU  # exactly the CUDA tests


def test_a_cuda_test_without_the_gpu_marker_is_refused(pytester):
    pytester.makeconftest("from markers import apply_gpu_marker\n"
                          "def pytest_collection_modifyitems(config, items):\n"
                          "    apply_gpu_marker(items, cuda_available=False)\n")
    pytester.makepyfile(test_x="import pytest\n"
                               "@pytest.mark.skipif(True, reason='needs CUDA')\n"
                               "def test_unmarked(): pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*must be marked @pytest.mark.gpu*test_unmarked*"])


def test_gpu_tests_skip_with_their_reason_without_cuda(pytester):
    pytester.makeconftest("from markers import apply_gpu_marker\n"
                          "def pytest_collection_modifyitems(config, items):\n"
                          "    apply_gpu_marker(items, cuda_available=False)\n")
    pytester.makepyfile(test_x="import pytest\n"
                               "@pytest.mark.gpu\n"
                               "def test_on_gpu(): assert False, 'must not run without CUDA'\n"
                               "def test_on_cpu(): pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs CUDA*pytest -m gpu*"])
