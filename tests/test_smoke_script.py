"""scripts/smoke.py: how it reads commands out of the docs (the smoke run itself is `make smoke`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("dnnkit_smoke", ROOT / "scripts" / "smoke.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["dnnkit_smoke"] = module
    spec.loader.exec_module(module)
    return module


BLOCK = """\
# a comment line
$ dnnkit zoo list   # built-in models

dnnkit prune zoo:digits-cnn --ratio 0.5 \\
    --data digits -o a.safetensors
ls ckpts/*.safetensors | dnnkit batch - --out-dir pruned -- prune --ratio 0.5 --json \\
  | jq -r '.input'
dnnkit batch runs/ -- eval
  | jq .metrics
cat > plan.jsonl <<'EOF'
{"input": "a.safetensors"}
# not a comment inside a heredoc
EOF
dnnkit explain zoo:digits-cnn --data digits --index 540   # exits 2: index out of range
"""


def test_split_commands_joins_continuations_pipes_and_heredocs(smoke):
    cmds = smoke.split_commands(BLOCK.splitlines(), 10, "docs/x.md")
    texts = [c.text for c in cmds]
    assert texts[0] == "dnnkit zoo list   # built-in models"
    assert texts[1].startswith("dnnkit prune") and texts[1].endswith("-o a.safetensors")
    assert "| jq -r '.input'" in texts[2]
    assert texts[3].endswith("| jq .metrics")
    assert texts[4].splitlines()[-1] == "EOF" and "# not a comment" in texts[4]
    assert [c.expect for c in cmds] == [0, 0, 0, 0, 0, 2]
    assert [c.line for c in cmds] == [11, 13, 15, 17, 19, 23]


def test_markers_pick_blocks(smoke, tmp_path, monkeypatch):
    doc = tmp_path / "docs" / "thing.md"
    doc.parent.mkdir()
    doc.write_text("# thing\n\n```bash\ndnnkit not-this\n```\n\n<!-- smoke -->\n```bash\ndnnkit zoo list\n```\n"
                   "\n<!-- smoke: script -->\n```bash\nX=1\necho $X\n```\n"
                   "\n<!-- smoke -->\nsome text\n```bash\ndnnkit not-this-either\n```\n")
    monkeypatch.setattr(smoke, "ROOT", tmp_path)
    cmds = smoke.extract(doc)
    assert [(c.text, c.script) for c in cmds] == [("dnnkit zoo list", False), ("X=1\necho $X", True)]


def test_json_check(smoke):
    def kind(text, expect=0):
        return smoke.json_check(smoke.Command("d", 1, text, expect=expect))

    assert kind("dnnkit inspect m.safetensors --json   # note") == "object"
    assert kind("dnnkit inspect m.safetensors") is None
    assert kind("dnnkit inspect m.safetensors --json | jq .format") is None
    assert kind("dnnkit batch 'a/*.safetensors' -- eval") == "lines"
    assert kind("dnnkit eval zoo:x --json > r.json") is None
    assert kind("dnnkit eval zoo:x --json", expect=2) is None
    assert smoke._check_stdout("object", '{"a": 1}\n') is None
    assert smoke._check_stdout("object", '{"a": 1}\n{"b": 2}\n') is not None
    assert smoke._check_stdout("lines", '{"a": 1}\n{"b": 2}\n') is None
    assert smoke._check_stdout("lines", "") is not None


def test_skips_and_fixtures(smoke):
    hf = smoke.Command("d", 1, "dnnkit inspect hf:org/name")
    for c in [hf]:
        for pattern, reason in smoke.SKIPS:
            if smoke.re.search(pattern, c.text):
                c.skip = reason
    assert hf.skip and "network" in hf.skip
    cmds = [smoke.Command("d", 1, "ls ckpts/*.safetensors | dnnkit batch - -- inspect"),
            smoke.Command("d", 2, "dnnkit prune model.safetensors --ratio 0.5 -o model-50.safetensors")]
    assert smoke._fixture_used("ckpts/", cmds) and smoke._fixture_used("model.safetensors", cmds)
    assert not smoke._fixture_used("weights.safetensors", cmds)
    assert not smoke._fixture_used("runs/", cmds)


def test_every_command_has_a_smoke_example(smoke):
    """Each top-level command's guide docs/<command>.md carries a marked quick example."""
    from dnnkit.cli.app import COMMANDS

    cmds = smoke.collect()
    tour = [c for c in cmds if c.doc == "README.md"]
    assert len(tour) >= 15 and all(c.text.split()[0] in {"dnnkit", "ls"} for c in tour)
    for name, _, _ in COMMANDS:
        doc = f"docs/{name}.md"
        assert (ROOT / doc).exists(), doc
        assert [c for c in cmds if c.doc == doc], f"{doc} has no <!-- smoke --> block"
