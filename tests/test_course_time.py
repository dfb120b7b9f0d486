"""benchmarks/course_time.py: the output clean-up that decides what the book shows."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "course_time.py"
spec = importlib.util.spec_from_file_location("course_time", SCRIPT)
course_time = importlib.util.module_from_spec(spec)
spec.loader.exec_module(course_time)


def stream(name, text):
    return {"output_type": "stream", "name": name, "text": text}


def test_progress_bar_updates_collapse_to_their_last_state():
    text = "training:  0%|  | 0/20\rtraining: 50%|# | 10/20\rtraining: 100%|##| 20/20\n"
    assert course_time._collapse_carriage_returns(text) == "training: 100%|##| 20/20\n"


def test_consecutive_outputs_of_one_stream_are_merged():
    outputs = [stream("stderr", "a 0%\r"), stream("stderr", "a 100%\n"),
               stream("stdout", "result\n"), {"output_type": "display_data", "data": {}},
               stream("stdout", "after\n")]
    merged = course_time._merge_streams(outputs)
    assert [o.get("name") for o in merged] == ["stderr", "stdout", None, "stdout"]
    assert merged[0]["text"] == "a 100%\n"
    assert merged[3]["text"] == "after\n"


def test_kernels_check_the_texts_readings_strictly(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    env = course_time.kernel_environment("smoke")
    assert env["DLBIO_PROFILE"] == "smoke" and env["DLBIO_WIDGETS"] == "0"
    assert env["DLBIO_STRICT_READINGS"] == "1" and "MPLBACKEND" not in env
