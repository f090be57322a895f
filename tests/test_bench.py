"""Smoke test of make bench: runs every measurement once at tiny sizes. No timing is asserted."""

import json

from lora_edu import bench


def test_quick_bench_writes_table_json_and_figure(tmp_path, capsys):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 5_000
    names = [r["name"] for r in data["rows"]]
    assert any("LoRA fwd+bwd" in n for n in names) and any("rank slider" in n for n in names)
    assert any("NF4" in n for n in names) and any("optimizer-state" in n for n in names)
    assert data["machine"]["torch_threads"] >= 1 and "torch threads" in out
    for r in data["rows"]:
        assert r["a_value"] > 0 and r["b_value"] > 0
    trainable = next(r for r in data["rows"] if "trainable parameters" in r["name"])
    assert trainable["a_value"] < trainable["b_value"]  # LoRA trains fewer parameters (counted, not timed)


def test_interleaved_returns_medians():
    calls = []
    ta, tb = bench.interleaved(lambda: calls.append("a"), lambda: calls.append("b"), repeats=4, warmup=1)
    assert calls == ["a", "b"] * 5 and ta >= 0 and tb >= 0
