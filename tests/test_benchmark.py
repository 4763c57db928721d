"""The benchmark command runs and writes its JSON (a small section only: timings are never tested)."""
import json
import subprocess

from conftest import PYTHON, ROOT


def test_benchmark_inference_section_writes_results(tmp_path):
    out = tmp_path / "results.json"
    p = subprocess.run([PYTHON, "-m", "benchmark", "--quick", "--only", "inference", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["quick"] is True and r["machine"]["cores"] >= 1
    for key in ("numpy_vae_encode_ms", "int8_vae_encode_ms", "numpy_lstm_step_ms", "numpy_agent_step_ms"):
        assert r[key] > 0, key
        assert key in p.stdout
    # a second partial run keeps the figures of the first
    p = subprocess.run([PYTHON, "-m", "benchmark", "--quick", "--only", "mpi", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert "numpy_vae_encode_ms" in r and r["mpi_idle_rank_cpu_s_in_3s"] >= 0


def test_vae_step_benchmark_writes_its_figures(tmp_path):
    out = tmp_path / "vae_step.json"
    p = subprocess.run([PYTHON, "-m", "benchmark.vae_step", "--batch-sizes", "4,8", "--steps", "1",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert set(r["batches"]) == {"4", "8"}
    for size, b in r["batches"].items():
        assert b["train_step_ms"] > 0 and b["train_on_batch_on_device_ms"] > 0
        assert abs(b["frames_per_s"] - int(size) / b["train_step_ms"] * 1e3) < 1e-6
    bad = subprocess.run([PYTHON, "-m", "benchmark.vae_step", "--batch-sizes", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--batch-sizes" in bad.stderr
