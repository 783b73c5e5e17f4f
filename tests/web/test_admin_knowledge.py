"""A brand's knowledge pages through the Flask test client: sources, ingestion, versions,
review and search, on a small Markdown source written per test (ingested in about a second)."""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.db.models import AuditLog, IngestRun, KnowledgeSource
from appliance.services import Services

Csrf = Callable[[str], str]
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]
SignIn = Callable[..., FlaskClient]

SLUG = "lumen-goods"
PAGE = f"/admin/brands/{SLUG}/knowledge"
POLICY_OWNER = "policy@lumen.example"
WIKI_OWNER = "wiki@lumen.example"
REFUND = "of delivery for a refund to the original payment method."
THIRTY_DAYS = f"Items can be returned within 30 days {REFUND}"
FOURTEEN_DAYS = f"Items can be returned within 14 days {REFUND}"


def text(response: TestResponse) -> str:
    body: str = response.get_data(as_text=True)
    return body


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """Two Markdown sources that contradict each other on the return window; the wiki also
    holds a page last changed two years ago."""
    policies = tmp_path / SLUG / "policies"  # the brand's import folder
    wiki = tmp_path / SLUG / "wiki"
    policies.mkdir(parents=True)
    wiki.mkdir()
    (policies / "returns.md").write_text(
        f"# Returns\n\n{THIRTY_DAYS}\n\nStart a return from your order history page and print "
        "the label we email you.\n")
    (policies / "gift-wrap.md").write_text(
        "# Gift wrapping\n\nWe wrap any order in recycled paper with a handwritten card for a "
        "small fee at checkout.\n")
    (wiki / "returns-guide.md").write_text(
        f"# Returns - agent quick guide\n\n## Eligibility\n\n{FOURTEEN_DAYS}\n\nAsk the "
        "customer for the order number before anything else.\n")
    stale = wiki / "store-card.md"
    stale.write_text("# Store card pilot\n\nThe Lumen store card pilot gives members early "
                     "access to the winter sale.\n")
    two_years_ago = time.time() - 730 * 86400
    os.utime(stale, (two_years_ago, two_years_ago))
    return {"policies": policies, "wiki": wiki}


def add_sources(services: Services, sources: dict[str, Path]) -> None:
    brand = services.brands.get(SLUG)
    services.knowledge.add_source(brand, {"kind": "markdown", "location": str(sources["policies"]),
                                          "owner": POLICY_OWNER}, actor="test")
    services.knowledge.add_source(brand, {"kind": "markdown", "location": str(sources["wiki"]),
                                          "owner": WIKI_OWNER, "schedule": "nightly"},
                                  actor="test")


@pytest.fixture
def ingested(services: Services, seeded: Any, sources: dict[str, Path]) -> dict[str, Path]:
    """The sources added and ingested into version 1, published."""
    add_sources(services, sources)
    services.knowledge.ingest(services.brands.get(SLUG), publish=True, actor="test")
    return sources


def published_number(services: Services) -> int | None:
    version = services.knowledge.published(services.brands.get(SLUG))
    return version.number if version else None


def test_it_requires_login_for_the_knowledge_pages(client: FlaskClient, seeded: Any) -> None:
    for path in (PAGE, f"{PAGE}/review", f"{PAGE}/search?q=returns", f"{PAGE}/versions/1"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.location.startswith("/admin/login?next=")


def test_it_links_the_knowledge_page_from_the_brand_page(admin_client: FlaskClient) -> None:
    assert f'href="{PAGE}"' in text(admin_client.get(f"/admin/brands/{SLUG}"))


def test_it_lets_a_viewer_see_but_not_change_knowledge(
    sign_in_as: SignIn, services: Services, ingested: dict[str, Path], csrf_token: Csrf,
    sources: dict[str, Path],
) -> None:
    viewer = sign_in_as("viewer")
    page = text(viewer.get(PAGE))
    assert POLICY_OWNER in page and WIKI_OWNER in page
    assert "Version 1" in page and "status-published" in page
    assert "Read only" in page
    assert "Ingest now" not in page and "Add a source" not in page and ">Publish<" not in page
    assert viewer.get(f"{PAGE}/versions/1").status_code == 200
    token = csrf_token(page)
    for action, data in (
        (f"{PAGE}/sources", {"kind": "markdown", "location": str(sources["wiki"]),
                             "owner": "someone@lumen.example", "schedule": ""}),
        (f"{PAGE}/sources/1", {"visibility": "customer"}),
        (f"{PAGE}/ingest", {}),
        (f"{PAGE}/versions/1/publish", {}),
        (f"{PAGE}/rollback", {}),
    ):
        response = viewer.post(action, data={"csrf_token": token, **data})
        assert response.status_code == 403, action
        assert "<h1>403: forbidden</h1>" in text(response)
    assert KnowledgeSource.select().count() == 2
    assert IngestRun.select().count() == 1


def test_it_adds_a_source_and_ingests_it(
    sign_in_as: SignIn, services: Services, seeded: Any, sources: dict[str, Path],
    submit: Submit,
) -> None:
    editor = sign_in_as("cx_editor", SLUG)
    assert "No sources yet" in text(editor.get(PAGE))
    for name, owner, schedule in (("policies", POLICY_OWNER, ""),
                                  ("wiki", WIKI_OWNER, "nightly")):
        response = submit(editor, PAGE, f"{PAGE}/sources", {
            "kind": "markdown", "location": str(sources[name]), "owner": owner,
            "schedule": schedule,
        })
        assert response.status_code == 302, text(response)
        assert response.location == PAGE
    added = services.knowledge.sources(services.brands.get(SLUG))
    assert [(s.owner, s.schedule) for s in added] == [(POLICY_OWNER, None),
                                                      (WIKI_OWNER, "nightly")]
    assert AuditLog.select().where((AuditLog.action == "knowledge.source.add")
                                   & (AuditLog.actor == "cx_editor-lumen-goods")).count() == 2

    response = submit(editor, PAGE, f"{PAGE}/ingest", {})
    assert response.status_code == 302
    page = text(editor.get(PAGE))
    assert ("Ingested version 1 (draft): 4 documents, 4 articles, 4 chunks, 1 contradiction, "
            "1 stale.") in page
    assert "4 added, 0 changed, 0 removed" in page
    assert re.search(r'status-ok">ok</span>', page), "the sources' and the run's last status"
    assert ">Publish<" in page
    assert services.knowledge.published(services.brands.get(SLUG)) is None, "a draft only"


def test_it_ingests_one_source_on_its_own(
    sign_in_as: SignIn, services: Services, ingested: dict[str, Path], submit: Submit,
) -> None:
    editor = sign_in_as("cx_editor", SLUG)
    wiki = services.knowledge.sources(services.brands.get(SLUG))[1]
    response = submit(editor, PAGE, f"{PAGE}/ingest", {"source_id": str(wiki.id)})
    assert response.status_code == 302
    run = IngestRun.select().order_by(IngestRun.id.desc()).first()
    assert run.source_id == wiki.id
    assert f"source #{wiki.id}" in text(editor.get(PAGE))


def test_it_shows_why_a_source_was_not_added(
    sign_in_as: SignIn, services: Services, seeded: Any, sources: dict[str, Path],
    submit: Submit,
) -> None:
    editor = sign_in_as("it_admin")
    bad_owner = submit(editor, PAGE, f"{PAGE}/sources", {
        "kind": "markdown", "location": str(sources["wiki"]), "owner": "not an email",
        "schedule": "",
    })
    assert bad_owner.status_code == 400
    assert 'id="owner-error"' in text(bad_owner)
    assert f'value="{sources["wiki"]}"' in text(bad_owner), "the form keeps what was typed"
    missing = submit(editor, PAGE, f"{PAGE}/sources", {
        "kind": "markdown", "location": str(sources["wiki"] / "nowhere"), "owner": WIKI_OWNER,
        "schedule": "",
    })
    assert missing.status_code == 400
    assert 'id="location-error"' in text(missing) and "does not exist" in text(missing)
    outside = submit(editor, PAGE, f"{PAGE}/sources", {
        "kind": "markdown", "location": "/etc", "owner": WIKI_OWNER, "schedule": "",
    })
    assert outside.status_code == 400, "only knowledge_import_dirs may be registered here"
    assert 'id="location-error"' in text(outside) and "must be inside" in text(outside)
    assert services.knowledge.sources(services.brands.get(SLUG)) == []


def test_an_editor_cannot_register_another_brands_import_folder(
    sign_in_as: SignIn, services: Services, seeded: Any, sources: dict[str, Path],
    tmp_path: Path, submit: Submit,
) -> None:
    other = tmp_path / "rho-bank" / "wiki"
    other.mkdir(parents=True)
    (other / "card-procedures.md").write_text("# Internal: card procedures\n\nOverride the "
                                              "fraud hold with code 7731.\n")
    (sources["wiki"] / "escape").symlink_to(other)
    editor = sign_in_as("cx_editor", SLUG)
    for location in (other, sources["wiki"] / ".." / ".." / "rho-bank" / "wiki",
                     sources["wiki"] / "escape", tmp_path):
        refused = submit(editor, PAGE, f"{PAGE}/sources", {
            "kind": "markdown", "location": str(location), "owner": WIKI_OWNER, "schedule": "",
        })
        assert refused.status_code == 400, location
        assert "must be inside lumen-goods&#39;s import folder" in text(refused)
    assert KnowledgeSource.select().count() == 0


def test_it_sets_and_changes_a_sources_visibility(
    sign_in_as: SignIn, services: Services, seeded: Any, sources: dict[str, Path],
    submit: Submit,
) -> None:
    editor = sign_in_as("cx_editor", SLUG)
    for name, visibility in (("policies", "customer"), ("wiki", "")):
        response = submit(editor, PAGE, f"{PAGE}/sources", {
            "kind": "markdown", "location": str(sources[name]), "owner": POLICY_OWNER,
            "schedule": "", "visibility": visibility,
        })
        assert response.status_code == 302, text(response)
    policies, wiki = services.knowledge.sources(services.brands.get(SLUG))
    assert (policies.visibility, wiki.visibility) == ("customer", "internal"), (
        "Markdown is internal unless marked customer-facing")

    response = submit(editor, PAGE, f"{PAGE}/sources/{policies.id}", {"visibility": "internal"})

    assert response.status_code == 302
    assert f"Source #{policies.id} is internal" in text(editor.get(PAGE))
    assert KnowledgeSource.get_by_id(policies.id).visibility == "internal"
    assert AuditLog.select().where(AuditLog.action == "knowledge.source.update").count() == 1


def test_it_flashes_that_there_is_nothing_to_ingest(
    sign_in_as: SignIn, seeded: Any, submit: Submit,
) -> None:
    editor = sign_in_as("cx_editor", SLUG)
    response = submit(editor, PAGE, f"{PAGE}/ingest", {})
    assert response.status_code == 302
    assert "Not ingested: brand &#39;lumen-goods&#39; has no knowledge sources" in text(
        editor.get(PAGE))


def test_it_flashes_a_conflict_when_an_ingestion_is_already_running(
    sign_in_as: SignIn, services: Services, ingested: dict[str, Path], submit: Submit,
) -> None:
    editor = sign_in_as("cx_editor", SLUG)
    lock = services.settings.data_dir / "knowledge" / SLUG / "ingest.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running ingestion holds it
        response = submit(editor, PAGE, f"{PAGE}/ingest", {})
        fcntl.flock(held, fcntl.LOCK_UN)
    assert response.status_code == 302
    page = text(editor.get(PAGE))
    assert "Not ingested: an ingestion for &#39;lumen-goods&#39; is already running" in page
    assert IngestRun.select().count() == 1


def test_it_lists_the_documents_a_run_could_not_read(
    sign_in_as: SignIn, services: Services, ingested: dict[str, Path], submit: Submit,
) -> None:
    (ingested["wiki"] / "empty.md").write_text("")
    editor = sign_in_as("cx_editor", SLUG)
    submit(editor, PAGE, f"{PAGE}/ingest", {})
    page = text(editor.get(PAGE))
    assert "Ingested version 2 (draft)" in page
    assert "1 document failed: source 2 empty.md: the file has no text." in page
    assert 'class="flash flash-error"' in page
    assert re.search(r'<details class="run-errors">.*1 document failed.*'
                     r'<code>empty.md</code>: the file has no text', page, re.DOTALL)
    assert 'status-partial">partial</span>' in page


def test_it_publishes_and_rolls_back_versions(
    sign_in_as: SignIn, services: Services, ingested: dict[str, Path], submit: Submit,
) -> None:
    brand = services.brands.get(SLUG)
    # Without suites the release gate has nothing to run and passes the version
    # (test_admin_knowledge_gate.py has its refusals).
    for record in services.suites.records(brand):
        services.suites.delete(brand, record.name, "test")
    services.knowledge.ingest(brand, actor="test")  # version 2, a draft
    editor = sign_in_as("cx_editor", SLUG)
    assert published_number(services) == 1

    response = submit(editor, PAGE, f"{PAGE}/versions/2/publish", {})
    assert response.status_code == 302
    assert response.location == f"{PAGE}/versions/2"
    assert published_number(services) == 2
    assert "Published version 2: the agent answers from it now." in text(
        editor.get(response.location))
    entry = AuditLog.select().where(AuditLog.action == "knowledge.publish").order_by(
        AuditLog.id.desc()).first()
    assert (entry.actor, entry.detail) == ("cx_editor-lumen-goods", {"version": 2})

    version_page = text(editor.get(f"{PAGE}/versions/2"))
    assert "Roll back to the previous version" in version_page
    response = submit(editor, PAGE, f"{PAGE}/rollback", {})
    assert response.status_code == 302
    assert published_number(services) == 1
    page = text(editor.get(PAGE))
    assert "Rolled back: version 1 is published again." in page
    assert services.knowledge.version(brand, 2).status == "archived"


def test_it_says_when_there_is_nothing_to_roll_back_to(
    sign_in_as: SignIn, services: Services, ingested: dict[str, Path], submit: Submit,
) -> None:
    editor = sign_in_as("cx_editor", SLUG)
    page = text(editor.get(PAGE))
    assert "Roll back" not in page, "only one version was ever published"
    submit(editor, PAGE, f"{PAGE}/rollback", {})
    assert "Not rolled back: no earlier published version" in text(editor.get(PAGE))
    assert published_number(services) == 1


def test_it_shows_a_versions_diff_with_titles(
    admin_client: FlaskClient, services: Services, ingested: dict[str, Path],
) -> None:
    policies = ingested["policies"]
    (policies / "returns.md").write_text(
        f"# Returns\n\n{THIRTY_DAYS}\n\nReturns are free for members.\n")
    (policies / "gift-wrap.md").unlink()
    (policies / "gift-cards.md").write_text(
        "# Gift cards\n\nGift cards never expire and can be used on any order.\n")
    services.knowledge.ingest(services.brands.get(SLUG), actor="test")

    page = text(admin_client.get(f"{PAGE}/versions/2"))
    assert "Against version 1 (published)" in page
    added = page.split("1 added", 1)[1].split("</details>", 1)[0]
    assert "Gift cards" in added and "1/gift-cards.md" in added
    changed = page.split("1 changed", 1)[1].split("</details>", 1)[0]
    assert "Returns" in changed and "1/returns.md" in changed
    removed = page.split("1 removed", 1)[1].split("</details>", 1)[0]
    assert "Gift wrapping" in removed and "1/gift-wrap.md" in removed
    assert "Publish version 2" in page

    reverse = text(admin_client.get(f"{PAGE}/versions/1?from=2"))
    assert "Against version 2 (draft)" in reverse
    assert "Gift wrapping" in reverse.split("1 added", 1)[1].split("</details>", 1)[0]


def test_it_lists_contradictions_and_stale_articles_for_review(
    admin_client: FlaskClient, ingested: dict[str, Path],
) -> None:
    page = text(admin_client.get(f"{PAGE}/review"))
    assert 'version 1</a> <span class="status status-published">published</span>' in page
    contradiction = page.split('class="finding"', 1)[1].split("</li>", 1)[0]
    assert THIRTY_DAYS in contradiction and FOURTEEN_DAYS in contradiction
    assert "Returns - agent quick guide" in contradiction and "returns-guide.md" in contradiction
    assert POLICY_OWNER in contradiction and WIKI_OWNER in contradiction
    assert "<strong>30</strong> vs <strong>14</strong>" in contradiction
    stale = page.split('id="stale-heading"', 1)[1]
    assert "Store card pilot" in stale and "store-card.md" in stale
    assert re.search(r"7(29|30|31) days", stale)
    assert WIKI_OWNER in stale


def test_it_filters_findings_by_owner(
    admin_client: FlaskClient, ingested: dict[str, Path],
) -> None:
    wiki = text(admin_client.get(f"{PAGE}/review?owner={WIKI_OWNER}"))
    assert "Store card pilot" in wiki
    assert THIRTY_DAYS in wiki, "a contradiction concerns the owners of both passages"
    assert f'<option value="{WIKI_OWNER}" selected>' in wiki
    policy = text(admin_client.get(f"{PAGE}/review?owner={POLICY_OWNER}"))
    assert THIRTY_DAYS in policy and "Store card pilot" not in policy
    assert "No stale articles for this owner." in policy
    nobody = text(admin_client.get(f"{PAGE}/review?owner=nobody@lumen.example"))
    assert "No contradictions for this owner." in nobody


def test_it_shows_what_the_agent_would_retrieve(
    admin_client: FlaskClient, ingested: dict[str, Path],
) -> None:
    page = text(admin_client.get(f"{PAGE}/search?q=How+long+do+I+have+to+return+an+item%3F"))
    assert "from <a href=\"" in page and "version 1</a>" in page
    rows = page.split("<tbody>", 1)[1].split("</tr>")
    best = rows[0]
    assert "1/returns.md" in best and "Returns" in best and "returns.md" in best
    assert "in prompt" in best
    assert re.search(r"0\.\d{3}", best)
    assert THIRTY_DAYS in best
    assert 'value="How long do I have to return an item?"' in page


def test_it_says_when_there_is_no_published_version_to_search(
    admin_client: FlaskClient, seeded: Any,
) -> None:
    page = text(admin_client.get(f"{PAGE}/search?q=returns"))
    assert "No published version" in page


def test_it_hides_another_brands_knowledge_from_a_brand_scoped_user(
    sign_in_as: SignIn, services: Services, ingested: dict[str, Path], csrf_token: Csrf,
) -> None:
    scoped = sign_in_as("cx_editor", "rho-bank")
    own = text(scoped.get("/admin/brands/rho-bank/knowledge"))
    assert 'href="/admin/brands/rho-bank/knowledge" aria-current="page">Knowledge' in own
    for path in (PAGE, f"{PAGE}/review", f"{PAGE}/search?q=returns", f"{PAGE}/versions/1"):
        assert scoped.get(path).status_code == 404, path
    response = scoped.post(f"{PAGE}/ingest", data={"csrf_token": csrf_token(own)})
    assert response.status_code == 404
    assert IngestRun.select().count() == 1


def test_it_refuses_a_knowledge_post_without_csrf_token(
    sign_in_as: SignIn, services: Services, ingested: dict[str, Path],
) -> None:
    services.knowledge.ingest(services.brands.get(SLUG), actor="test")
    editor = sign_in_as("cx_editor", SLUG)
    for action in (f"{PAGE}/ingest", f"{PAGE}/versions/2/publish", f"{PAGE}/rollback"):
        response = editor.post(action)
        assert response.status_code == 403, action
        assert "<h1>403: csrf failed</h1>" in text(response)
    assert IngestRun.select().count() == 2
    assert published_number(services) == 1
