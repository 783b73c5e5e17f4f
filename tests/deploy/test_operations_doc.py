"""docs/operations.md keeps up with the units: every process and its port is documented."""

from __future__ import annotations

import re

from deploy_support import REPO, SYSTEMD_DIR

GUIDE = (REPO / "docs" / "operations.md").read_text()


def test_it_documents_every_unit() -> None:
    missing = [path.name for path in SYSTEMD_DIR.iterdir() if f"`{path.name}`" not in GUIDE]
    assert missing == []


def test_it_documents_every_port_a_unit_listens_on() -> None:
    ports = {
        port
        for path in SYSTEMD_DIR.glob("*.service")
        for port in re.findall(r"--port (\d+)", path.read_text())
    }
    assert ports == {"8001", "8002", "8003"}
    assert [port for port in sorted(ports) if f"127.0.0.1:{port}" not in GUIDE] == []
    assert "127.0.0.1:8080" in GUIDE
