"""The alert rules of docs/observability.md are valid Prometheus rules (``promtool check
rules``, from Debian's prometheus package; skipped, naming the install command, without it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def rule_blocks() -> list[str]:
    """The guide's ```yaml blocks that define rule groups."""
    blocks = re.findall(r"^```yaml\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S)
    return [block for block in blocks if block.startswith("groups:")]


def test_the_guide_has_its_alert_rules() -> None:
    [rules] = rule_blocks()
    for alert in ("BacklogAge", "ExpiredLeases", "DeadTuplesGrowing", "OldTransaction"):
        assert f"alert: MediaStore{alert}" in rules


def test_promtool_accepts_the_alert_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    [rules] = rule_blocks()
    path = tmp_path / "rules.yml"
    path.write_text(rules)
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout
