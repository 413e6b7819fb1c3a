import json
import subprocess
import sys


def run_omni(*args):
    out = subprocess.run([sys.executable, "-m", "omni", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_trace_text_json_shows_documented_shapes():
    recs = json.loads(run_omni("trace", "text", "Hello, how are you?", "--json"))
    by_name = {}
    for r in recs:
        by_name.setdefault(r["name"], []).append(r["shape"])
    assert by_name["text.ids"] == [[1, 6]]
    assert by_name["thinker.embed"][0] == [1, 6, 256]
    assert by_name["thinker.layer0.attn.q"][0] == [1, 4, 6, 64]
    assert by_name["thinker.layer0.attn.scores"][0] == [1, 4, 6, 6]
    assert by_name["thinker.logits"][0] == [1, 6, 5000]
    assert [s[1] for s in by_name["generate.sequence"]] == list(range(7, 71))
    assert {"stage", "step", "desc", "numel", "bf16_bytes"} <= set(recs[0])


def test_trace_text_table_and_tokenizer(tiny_tokenizer):
    out = run_omni("trace", "text", "What did you hear?", "--tokenizer", str(tiny_tokenizer.path))
    n = len(tiny_tokenizer.encode("What did you hear?"))
    assert f"| (1, {n}) |" in out
    assert "| thinker.logits |" in out


def test_trace_text_other_prompt_without_tokenizer_is_an_error():
    out = subprocess.run([sys.executable, "-m", "omni", "trace", "text", "Something else"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "needs a tokenizer" in out.stderr


def test_tokenizer_train_command(tiny_corpus, tmp_path):
    out = run_omni("tokenizer", "train", str(tiny_corpus), "--out", str(tmp_path / "t.model"), "--vocab-size", "300")
    assert "pieces" in out and (tmp_path / "t.model").is_file()
