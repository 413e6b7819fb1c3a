"""The generated docs match the code: regenerated pages equal the committed ones, every
code link lands on the line that records the tensor, key seed shapes are on the pages,
and the step-through commands really stop where they say."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from omni import trace
from omni.cli import main
from omni.traces import TRACE_PIPELINES
from omni.docs_build import PAGES, fold

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#L(\d+))?\)")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """`omni docs build` into a temporary folder (one run for the whole module)."""
    out = tmp_path_factory.mktemp("docs")
    assert main(["docs", "build", "--out", str(out / "pipelines"), "--step-through", str(out / "step-through.md")]) == 0
    return out


def generated_files(root: Path) -> dict[str, str]:
    files = {f"pipelines/{p.name}": p.read_text(encoding="utf-8") for p in sorted((root / "pipelines").glob("*.md"))}
    files["step-through.md"] = (root / "step-through.md").read_text(encoding="utf-8")
    return files


def test_committed_docs_equal_freshly_generated_ones(fresh):
    new, committed = generated_files(fresh), generated_files(DOCS)
    assert sorted(new) == sorted(committed), "docs/pipelines differs in its files: run `omni docs build`"
    for name, text in new.items():
        assert committed[name] == text, f"docs/{name} is out of date with the code: run `omni docs build` and commit"


def test_every_pipeline_has_a_page():
    assert {p.pipeline for p in PAGES} == set(TRACE_PIPELINES)
    assert {(p.pipeline, p.kwargs.get("preset")) for p in PAGES if p.pipeline == "mufun"} == {
        ("mufun", "mufun"), ("mufun", "as-documented")}


def code_links(doc: Path) -> list[tuple[Path, int]]:
    text = doc.read_text(encoding="utf-8")
    return [((doc.parent / target).resolve(), int(line)) for target, line in LINK.findall(text) if line]


def test_code_links_land_on_the_recording_line():
    docs = [*sorted((DOCS / "pipelines").glob("*.md")), DOCS / "step-through.md"]
    seen = 0
    for doc in docs:
        for path, line in code_links(doc):
            assert path.is_file() and REPO in path.parents, f"{doc.name}: link to {path}, not a file in the repo"
            lines = path.read_text(encoding="utf-8").splitlines()
            assert 1 <= line <= len(lines), f"{doc.name}: {path.name}#L{line} is past the end ({len(lines)} lines)"
            text = lines[line - 1]
            recording = ("trace.record(" in text or "trace.record_always(" in text
                         or (path == REPO / "omni" / "trace.py" and "_ACTIVE.add(" in text))
            assert recording, f"{doc.name}: {path.relative_to(REPO)}:{line} records nothing: {text.strip()!r}"
            seen += 1
    assert seen > 300                               # every row of every page carries one


def test_doc_links_resolve():
    for doc in [DOCS / "README.md", *sorted((DOCS / "pipelines").glob("*.md")), DOCS / "step-through.md"]:
        for target, _ in LINK.findall(doc.read_text(encoding="utf-8")):
            if not target.startswith("http"):
                assert (doc.parent / target).exists(), f"{doc.relative_to(REPO)} links to missing {target}"


def test_index_lists_every_doc():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for doc in [*DOCS.glob("*.md"), DOCS / "pipelines" / "README.md"]:
        if doc.name != "README.md" or doc.parent.name == "pipelines":
            rel = doc.relative_to(DOCS).as_posix()
            assert f"]({rel})" in index, f"docs/README.md does not link to {rel}"


@pytest.mark.parametrize("page, shapes", [
    ("text.md", ["(1, 6)", "(1, 6, 256)", "(1, 4, 6, 64)", "(1, 4, 6, 6)", "(1, 6, 5,000)", "(1, 8) → (1, 70)",
                 "(1, 4, 7, 64)"]),
    ("image.md", ["(1, 3, 224, 224)", "(1, 128, 14, 14)", "(1, 196, 128)", "(1, 197, 128)", "(1, 1, 128)",
                  "(1, 1, 256)", "(1, 8, 256)", "(1, 9, 256)", "(1, 9, 5,000)"]),
    ("audio.md", ["(1, 100, 128)", "(1, 64, 50, 64)", "(1, 64, 25, 32)", "(1, 25, 2,048)", "(1, 25, 192)",
                  "(1, 25, 256)", "(1, 30, 256)"]),
    ("multimodal.md", ["(1, 1, 256)", "(1, 25, 256)", "(1, 35, 256)", "(1, 35, 5,000)"]),
    ("tts.md", ["(1, 10)", "(1, 1, 2)", "(1, 2, 2)", "(1, 301, 2)", "(301, 128)", "(385,280,)"]),
    ("talker-train.md", ["(2, 50, 128)", "(2, 50, 2)", "(100, 128)", "(100,)"]),
    ("mufun.md", ["(7,938,000, 2)", "(480,000,)", "(1, 128, 3,000)", "(1, 1,500, 1,280)", "(1, 300, 5,120)",
                  "(1,800, 5,120)", "(1,800, 10,240)", "(1,800, 4,096)", "(1, 1,807, 151,936)", "8,922,090,496"]),
    ("mufun-as-documented.md", ["(1, 80, 3,000)", "(1, 3,000, 1,280)", "(3,600, 5,120)", "(3,600, 3,584)",
                                "70.31 MB", "1.01 GB"]),
])
def test_key_documented_shapes_appear(page, shapes):
    text = (DOCS / "pipelines" / page).read_text(encoding="utf-8")
    for shape in shapes:
        assert f"| {shape} |" in text or f"{shape} →" in text or f"→ {shape}" in text or shape in text, \
            f"{page} lacks the documented {shape}"


def rec(name, shape, where="omni/x.py:1", desc="d", stage="s", step=0):
    n = 1
    for s in shape:
        n *= s
    return trace.TraceRecord(stage, step, name, desc, tuple(shape), n, 2 * n, where)


def test_fold_keeps_every_shape():
    layer = lambda i, t: [rec(f"m.layer{i}.q", (1, t), "a.py:1"), rec(f"m.layer{i}.out", (1, t, 4), "b.py:2")]
    records = [*layer(0, 6), *layer(1, 6), *layer(2, 6), *layer(3, 7)]         # layer 3 differs: kept
    records += [rec("seq", (1, k), "g.py:9") for k in range(7, 12)] + [rec("two", (1,)), rec("two", (2,))]
    for i, r in enumerate(records, 1):
        r.step = i
    rows = fold(records)
    assert [r.name for r in rows] == ["m.layer0.q", "m.layer0.out", "m.layer1–2", "m.layer3.q", "m.layer3.out",
                                      "seq × 5", "two", "two"]
    assert rows[2].steps == "3–6" and rows[2].shape == "as layer 0"
    assert rows[3].shape == "(1, 7)"
    assert rows[5].shape == "(1, 7) → (1, 11)" and rows[5].steps == "9–13"


def test_records_say_where_they_were_made():
    here = Path(__file__).resolve().relative_to(REPO).as_posix()
    with trace.Tracer() as tr:
        line = sys._getframe().f_lineno + 1
        trace.record("a", (2, 3))
        trace.mute()
        trace.record_always("b", (4,))
        trace.mute(False)
        tr.add("c", (1,))
    assert [r.where for r in tr.records] == [f"{here}:{line}", f"{here}:{line + 2}", f"{here}:{line + 4}"]
    assert '"where": ' in tr.to_json() and f"| {here}:{line} |" in tr.table()


def test_step_through_commands_stop_where_the_guide_says():
    """Run the guide's two pdb examples (the line breakpoint, the conditional one) and check what they print."""
    guide = (DOCS / "step-through.md").read_text(encoding="utf-8")
    by_line, by_name = re.findall(r"```\n\$ python -m pdb -m omni trace text\n(.*?)```", guide, re.S)[:2]
    line_break = re.search(r"^\(Pdb\) (b \S+)$", by_line, re.M)[1]
    size = re.search(r"^(torch\.Size\(\[.*\]\))$", by_line, re.M)[1]
    name_break = re.search(r"^\(Pdb\) (b .*, name == \"(.+)\")$", by_name, re.M)
    script = f"{line_break}\nc\np x.shape\n{name_break[1]}\nc\np name, x.shape\nq\n"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "pdb", "-m", "omni", "trace", "text"], input=script, text=True,
                         capture_output=True, cwd=REPO, timeout=120, env=env).stdout
    assert f"(Pdb) {size}" in out, out[-2000:]
    assert f"(Pdb) ('{name_break[2]}', torch.Size([" in out, out[-2000:]
