"""The admin views read and change data only through the services: no view module queries a
database model itself (the models are imported only as the types the services return)."""

from __future__ import annotations

import ast
from pathlib import Path

import appliance.web.admin

#: Model methods that run a query.
QUERIES = frozenset({"select", "get", "get_or_none", "get_by_id", "create", "update", "delete",
                     "delete_by_id", "insert", "insert_many", "replace", "raw", "bulk_create",
                     "bulk_update"})
ADMIN = Path(appliance.web.admin.__file__).parent


def _queries(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    models = {alias.asname or alias.name for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module == "appliance.db.models"
              for alias in node.names}
    return [f"{path.name}:{node.lineno} {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in models and node.attr in QUERIES]


def test_no_admin_view_queries_a_model_itself() -> None:
    modules = sorted(ADMIN.glob("*.py"))
    assert len(modules) > 10
    assert [query for path in modules for query in _queries(path)] == []


def test_the_check_finds_a_query(tmp_path: Path) -> None:
    view = tmp_path / "view.py"
    view.write_text("from appliance.db.models import JobRun as Run\n"
                    "def latest():\n    return Run.select().first()\n")
    assert _queries(view) == ["view.py:3 Run.select"]
