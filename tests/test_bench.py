"""make bench: a smoke run at tiny sizes, and the interleaved timer. No timing is asserted."""

import json
import time

from lora_edu.tools import bench


def test_quick_bench_writes_table_json_and_figure(tmp_path, capsys):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 5_000
    rows = {r["name"]: r for r in data["rows"]}
    names = list(rows)
    assert any("LoRA fwd+bwd" in n for n in names) and any("rank slider, " in n and "one move" in n for n in names)
    assert any("NF4" in n for n in names) and any("optimizer-state" in n for n in names)
    assert data["machine"]["torch_threads"] >= 1 and "torch threads" in out
    (browser,) = [r for n, r in rows.items() if "JupyterLab" in n]
    assert browser["skipped"] == "skipped with --quick" and browser["a_value"] is None  # says so, not a 0
    for r in data["rows"]:
        if not r["skipped"]:
            assert r["a_value"] > 0 and r["b_value"] > 0 and r["ratio"] == r["a_value"] / r["b_value"]
    trainable = next(r for r in data["rows"] if "trainable parameters" in r["name"])
    assert trainable["a_value"] < trainable["b_value"]  # LoRA trains fewer parameters (counted, not timed)
    state = next(r for r in data["rows"] if "optimizer-state" in r["name"])
    # Adam keeps two float32 moments per trainable parameter: 8 bytes each, for LoRA and for full FT
    assert state["a_value"] * 1e6 == 8 * trainable["a_value"] and state["b_value"] * 1e6 == 8 * trainable["b_value"]


def test_interleaved_alternates_and_returns_each_functions_median(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    calls = []
    costs_a = iter([9.0, 9.0, 1.0, 2.0, 100.0])  # after 2 warm-up calls: median of 1, 2, 100 is 2
    costs_b = iter([9.0, 9.0, 5.0, 4.0, 6.0])  # median 5

    def fn(name, costs):
        def run():
            calls.append(name)
            clock[0] += next(costs)
        return run

    ta, tb = bench.interleaved(fn("a", costs_a), fn("b", costs_b), repeats=3, warmup=2)
    assert calls == ["a", "b"] * 5
    assert (ta, tb) == (2.0, 5.0)
