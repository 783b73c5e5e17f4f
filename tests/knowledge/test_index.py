"""The FAISS vector index: exact or HNSW by size, id mapping, and atomic save and load."""

from __future__ import annotations

import errno
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from appliance.knowledge import index as index_module
from appliance.knowledge.index import FLAT_MAX_VECTORS, IndexUnavailable, VectorIndex

DIM = 16
MODEL = "test-embedder"


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def some_ids(count: int) -> np.ndarray:
    # Large, unordered ids, so a row number passed off as an id would show.
    return np.arange(count, dtype=np.int64)[::-1] * 7 + 10**12


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    """HNSW from 51 vectors on, so an HNSW index builds in milliseconds."""
    monkeypatch.setattr(index_module, "FLAT_MAX_VECTORS", 50)
    return 50


BuildIndex = Callable[[int], VectorIndex]


@pytest.fixture(params=["flat", "hnsw"])
def build(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> BuildIndex:
    """build(count): an index of `count` unit vectors of the parametrised kind."""
    if request.param == "hnsw":
        monkeypatch.setattr(index_module, "FLAT_MAX_VECTORS", 50)

    def make(count: int) -> VectorIndex:
        built = VectorIndex.build(unit_vectors(count), some_ids(count), model_id=MODEL)
        assert built.kind == request.param
        return built

    return make


# --- choosing the kind ----------------------------------------------------------------------


def test_it_is_exact_up_to_the_threshold() -> None:
    count = FLAT_MAX_VECTORS

    built = VectorIndex.build(unit_vectors(count), np.arange(count), model_id=MODEL)

    assert built.kind == "flat"
    assert len(built) == count


def test_it_switches_to_hnsw_above_the_threshold(small_threshold: int) -> None:
    at = VectorIndex.build(unit_vectors(small_threshold), some_ids(small_threshold),
                           model_id=MODEL)
    above = VectorIndex.build(unit_vectors(small_threshold + 1), some_ids(small_threshold + 1),
                              model_id=MODEL)

    assert (at.kind, above.kind) == ("flat", "hnsw")
    assert (above.meta.dim, above.meta.count, above.model_id) == (DIM, small_threshold + 1, MODEL)


# --- searching ------------------------------------------------------------------------------


def test_it_finds_a_stored_vector_first_under_its_id(build: BuildIndex) -> None:
    index = build(200)
    vectors, ids = unit_vectors(len(index)), some_ids(len(index))

    for row in (0, 17, len(index) - 1):
        best = index.search_one(vectors[row], k=3)[0]
        assert best.id == ids[row]
        assert best.score == pytest.approx(1.0, abs=1e-5)


def test_it_ranks_hits_best_first_as_exact_search_does(build: BuildIndex) -> None:
    index = build(200)
    vectors, ids = unit_vectors(len(index)), some_ids(len(index))
    query = unit_vectors(1, seed=99)[0]

    hits = index.search_one(query, k=5)

    expected = np.argsort(-(vectors @ query))[:5]
    assert [hit.id for hit in hits] == [int(ids[row]) for row in expected]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_it_answers_each_query_of_a_batch(build: BuildIndex) -> None:
    index = build(100)
    vectors, ids = unit_vectors(len(index)), some_ids(len(index))

    results = index.search(vectors[[3, 4, 5]], k=2)

    assert [hits[0].id for hits in results] == [int(ids[3]), int(ids[4]), int(ids[5])]
    assert all(len(hits) == 2 for hits in results)


def test_it_returns_every_vector_when_k_exceeds_the_count(build: BuildIndex) -> None:
    index = build(60)

    hits = index.search_one(unit_vectors(1, seed=5)[0], k=1000)

    assert sorted(hit.id for hit in hits) == sorted(int(i) for i in some_ids(len(index)))


def test_it_returns_nothing_from_an_empty_index() -> None:
    index = VectorIndex.build(np.zeros((0, DIM), np.float32), np.zeros(0, np.int64),
                              model_id=MODEL)

    assert index.search(unit_vectors(2), k=5) == [[], []]


def test_it_searches_from_several_threads_at_once(build: BuildIndex) -> None:
    index = build(300)
    queries = unit_vectors(64, seed=3)
    expected = index.search(queries, k=5)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda q: index.search_one(q, k=5), queries))

    assert results == expected


@pytest.mark.parametrize(
    ("vectors", "ids", "message"),
    [
        (unit_vectors(3), np.array([1, 2]), "ids of shape"),
        (unit_vectors(3), np.array([1, 2, 2]), "distinct"),
        (unit_vectors(3) * 2, np.array([1, 2, 3]), "unit length"),
        (np.ones(DIM, np.float32), np.array([1]), r"\[n, dim\]"),
    ],
    ids=["id-count", "duplicate-ids", "not-unit", "one-dimensional"],
)
def test_it_refuses_input_it_cannot_index(vectors: Any, ids: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VectorIndex.build(vectors, ids, model_id=MODEL)


def test_it_refuses_a_query_of_another_width() -> None:
    index = VectorIndex.build(unit_vectors(5), some_ids(5), model_id=MODEL)

    with pytest.raises(ValueError, match="16-dim index"):
        index.search(np.ones(DIM + 1, np.float32), k=1)


# --- saving and loading ---------------------------------------------------------------------


def test_it_round_trips_through_save_and_load(build: BuildIndex, tmp_path: Path) -> None:
    index = build(120)
    queries = unit_vectors(10, seed=7)

    index.save(tmp_path / "brand-1")
    loaded = VectorIndex.load(tmp_path / "brand-1")

    assert sorted(p.name for p in (tmp_path / "brand-1").iterdir()) == [
        "ids.npy", "index.faiss", "meta.json"]
    assert loaded.meta == index.meta
    assert loaded.search(queries, k=4) == index.search(queries, k=4)


def test_it_maps_the_saved_file_into_memory(tmp_path: Path) -> None:
    VectorIndex.build(unit_vectors(50), some_ids(50), model_id=MODEL).save(tmp_path / "i")

    loaded = VectorIndex.load(tmp_path / "i")

    assert str((tmp_path / "i" / "index.faiss").resolve()) in Path("/proc/self/maps").read_text()
    assert loaded.search_one(unit_vectors(1)[0], k=1)[0].id == some_ids(50)[0]


def _saved_pair(tmp_path: Path) -> tuple[VectorIndex, VectorIndex, Path]:
    old = VectorIndex.build(unit_vectors(30, seed=1), some_ids(30), model_id="old-model")
    new = VectorIndex.build(unit_vectors(40, seed=2), some_ids(40), model_id="new-model")
    target = tmp_path / "indexes" / "brand-1"
    old.save(target)
    return old, new, target


def _only_the_target_is_left(target: Path) -> bool:
    return [p.name for p in target.parent.iterdir()] == [target.name]


def test_it_replaces_an_existing_index_in_one_step(tmp_path: Path) -> None:
    _, new, target = _saved_pair(tmp_path)

    new.save(target)

    assert VectorIndex.load(target).meta == new.meta
    assert _only_the_target_is_left(target)


def test_it_leaves_the_previous_index_intact_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new, target = _saved_pair(tmp_path)

    def crash(index: Any, path: str) -> None:
        Path(path).write_bytes(b"half an index")
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", crash)

    with pytest.raises(RuntimeError, match="disk full"):
        new.save(target)

    assert VectorIndex.load(target).meta == old.meta
    assert _only_the_target_is_left(target)


def test_it_leaves_the_previous_index_intact_when_the_swap_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new, target = _saved_pair(tmp_path)

    def broken_exchange(first: Path, second: Path) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(index_module, "_exchange", broken_exchange)

    with pytest.raises(OSError, match="I/O error"):
        new.save(target)

    assert VectorIndex.load(target).meta == old.meta
    assert _only_the_target_is_left(target)


def test_it_swaps_by_two_renames_where_the_filesystem_cannot_exchange(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, new, target = _saved_pair(tmp_path)

    def unsupported(first: Path, second: Path) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(index_module, "_exchange", unsupported)

    new.save(target)

    assert VectorIndex.load(target).meta == new.meta
    assert _only_the_target_is_left(target)


@pytest.mark.parametrize(
    "damage",
    ["no-directory", "no-meta", "truncated-index", "ids-of-another-index"],
)
def test_it_refuses_to_load_a_missing_or_damaged_index(tmp_path: Path, damage: str) -> None:
    target = tmp_path / "brand-1"
    VectorIndex.build(unit_vectors(30), some_ids(30), model_id=MODEL).save(target)
    if damage == "no-directory":
        target = tmp_path / "absent"
    elif damage == "no-meta":
        (target / "meta.json").unlink()
    elif damage == "truncated-index":
        data = (target / "index.faiss").read_bytes()
        (target / "index.faiss").write_bytes(data[: len(data) // 2])
    else:
        np.save(target / "ids.npy", some_ids(29))

    with pytest.raises(IndexUnavailable) as caught:
        VectorIndex.load(target)

    assert caught.value.status == 503
    assert "brand-1" in caught.value.message or damage == "no-directory"
