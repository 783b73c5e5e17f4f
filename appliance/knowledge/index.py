"""A FAISS vector index over unit vectors (inner product = cosine), saved atomically.

Up to `FLAT_MAX_VECTORS` vectors the index is exact (`IndexFlatIP`: ~2 ms per query at 20k on
one core); above it, HNSW (`IndexHNSWFlat`, approximate: ~1.3 ms per query at 100k). Each index
maps FAISS's row numbers to our int64 ids (`ids.npy`) and records which embedder made its
vectors, so vectors of another model are never searched against it.

On disk an index is a directory of `index.faiss`, `ids.npy` and `meta.json`. `save` writes a new
directory beside the target and renames it into place (swapping it with the old one), so
readers see the old index or the new one, never a mix, and a crash leaves the target as it was.
`load` maps `index.faiss` into memory (gunicorn workers share the pages) and is read-only.

Searches may run concurrently from several threads: FAISS CPU indexes are safe to search in
parallel, and nothing here changes an index after `build` or `load`.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import faiss
import numpy as np
import numpy.typing as npt

from appliance.errors import ApplianceError

#: Up to this many vectors the index is exact. A flat search scans every vector (~0.06 ms per
#: 1,000 on one core: 6 ms at 100k, over the 5 ms budget); HNSW stays near 1 ms at any size but
#: takes ~0.3-0.5 ms per vector to build on 2 cores (100k: 30-55 s).
FLAT_MAX_VECTORS = 20_000
#: HNSW graph degree: 32 neighbours per node (FAISS's usual choice for 384-dim text vectors).
HNSW_M = 32
#: Candidates kept while inserting. FAISS's default 40; 80 doubled the build time (68k MiniLM
#: vectors of real text: 14 s -> 28 s on 2 cores) for no recall gain.
HNSW_EF_CONSTRUCTION = 40
#: Candidates kept while searching (at least k). Measured on those 68k real-text vectors against
#: exact search: recall@10 0.945 at 16, 0.986 at 64, 0.995 at 128 (0.5 ms), 0.998 at 256 (0.9
#: ms). Random vectors, which have no structure to follow, are the worst case (scripts/bench).
HNSW_EF_SEARCH = 128
#: OpenMP threads for searching. One query at a time is fastest single-threaded (flat, 2 cores:
#: 10k vectors 0.25 ms with 1 thread, 1.1 ms with 2; 100k 6 ms vs 40 ms), and request threads
#: already run in parallel. Set once for the process when this module is imported.
SEARCH_THREADS = 1

INDEX_FILE = "index.faiss"
IDS_FILE = "ids.npy"
META_FILE = "meta.json"

IndexKind = Literal["flat", "hnsw"]
FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]

faiss.omp_set_num_threads(SEARCH_THREADS)
_omp_lock = threading.Lock()


class IndexUnavailable(ApplianceError):
    """The vector index on disk is missing, incomplete or unreadable; rebuild it."""

    status = 503
    code = "index_unavailable"


class Hit(NamedTuple):
    id: int
    #: Inner product of unit vectors: cosine similarity, higher is closer.
    score: float


@dataclass(frozen=True)
class IndexMeta:
    kind: IndexKind
    dim: int
    count: int
    #: The embedder whose vectors the index holds.
    model_id: str
    #: UTC, ISO 8601.
    created: str
    #: Unique per build: `load` uses it to notice an index replaced while it was reading.
    build_id: str


class VectorIndex:
    """Vectors with int64 ids, searched by inner product. Build with `build`, or `load`."""

    def __init__(self, index: Any, ids: IdArray, meta: IndexMeta) -> None:
        self._index = index
        self._ids = ids
        self.meta = meta

    @property
    def kind(self) -> IndexKind:
        return self.meta.kind

    @property
    def dim(self) -> int:
        return self.meta.dim

    @property
    def model_id(self) -> str:
        return self.meta.model_id

    def __len__(self) -> int:
        return self.meta.count

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def build(
        cls, vectors: npt.ArrayLike, ids: npt.ArrayLike, *, model_id: str
    ) -> VectorIndex:
        """Index unit `vectors` ([n, dim]) under `ids` (n distinct int64), made by `model_id`.

        Flat (exact) up to FLAT_MAX_VECTORS vectors, HNSW above. Raises ValueError for shapes
        that do not fit, duplicate ids or vectors that are not unit length.
        """
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        id_array = np.ascontiguousarray(ids, dtype=np.int64)
        _check_build_input(matrix, id_array)
        count, dim = matrix.shape
        kind: IndexKind = "flat" if count <= FLAT_MAX_VECTORS else "hnsw"
        index: Any
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        else:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
        with _omp_threads(os.cpu_count() or 1):  # inserting into HNSW is parallel
            index.add(matrix)
        meta = IndexMeta(
            kind=kind, dim=dim, count=count, model_id=model_id,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            build_id=uuid.uuid4().hex,
        )
        return cls(index, id_array, meta)

    # --- searching --------------------------------------------------------------------------

    def search(self, queries: npt.ArrayLike, k: int) -> list[list[Hit]]:
        """The k best hits for each query row ([dim] is one query), best first.

        Fewer than k hits when the index holds fewer vectors. Raises ValueError when the query
        width is not the index's dim.
        """
        matrix = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ValueError(f"queries of shape {matrix.shape} for a {self.dim}-dim index")
        k = min(k, self.meta.count)
        if k <= 0:
            return [[] for _ in range(matrix.shape[0])]
        scores, rows = self._index.search(matrix, k)
        return [
            [Hit(int(self._ids[row]), float(score))
             for row, score in zip(row_list, score_list, strict=True) if row >= 0]
            for row_list, score_list in zip(rows, scores, strict=True)
        ]

    def search_one(self, query: npt.ArrayLike, k: int) -> list[Hit]:
        """The k best hits for one [dim] query, best first."""
        return self.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)[0]

    # --- saving and loading -----------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the index to `directory`, replacing any index there in one atomic step.

        Files go to a new hidden directory beside the target, are flushed to disk, and the
        directory is then swapped into place; the old index is deleted after the swap. If
        anything fails first, the target is untouched and the partial directory removed.
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp",
                                        dir=directory.parent))
        try:
            self._write_files(staging)
            _move_into_place(staging, directory)
            _fsync(directory.parent)
        finally:
            # After the swap `staging` holds the old index; before it, a partial new one.
            shutil.rmtree(staging, ignore_errors=True)

    def _write_files(self, staging: Path) -> None:
        faiss.write_index(self._index, str(staging / INDEX_FILE))
        with (staging / IDS_FILE).open("wb") as fh:
            np.save(fh, self._ids, allow_pickle=False)
        # meta.json last: its presence means the other files are complete.
        (staging / META_FILE).write_text(json.dumps(asdict(self.meta), indent=1) + "\n")
        for name in (INDEX_FILE, IDS_FILE, META_FILE):
            _fsync(staging / name)
        _fsync(staging)

    @classmethod
    def load(cls, directory: Path) -> VectorIndex:
        """Open the index saved in `directory`, memory-mapped and read-only.

        Raises IndexUnavailable when it is missing, incomplete or inconsistent.
        """
        directory = Path(directory)
        try:
            # Re-read the meta after the data: if a save swapped the directory meanwhile, the
            # build ids differ and we read again, so the files always come from one build.
            for _ in range(3):
                meta = _read_meta(directory)
                index: Any = faiss.read_index(str(directory / INDEX_FILE),
                                              faiss.IO_FLAG_MMAP_IFC)
                ids = np.load(directory / IDS_FILE, allow_pickle=False)
                if _read_meta(directory) == meta:
                    break
            else:
                raise IndexUnavailable(f"vector index {directory.name} kept changing while "
                                       "being read")
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            # RuntimeError is how FAISS reports a truncated or foreign index file.
            raise IndexUnavailable(f"vector index {directory.name} is missing or "
                                   "unreadable") from exc
        if (index.d, index.ntotal, ids.shape, ids.dtype) != (meta.dim, meta.count,
                                                              (meta.count,), np.int64):
            raise IndexUnavailable(f"vector index {directory.name}: files do not match meta.json")
        if meta.kind == "hnsw":
            index.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index, ids, meta)


def _check_build_input(matrix: FloatArray, ids: IdArray) -> None:
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"vectors must be [n, dim], not {matrix.shape}")
    if ids.shape != (matrix.shape[0],):
        raise ValueError(f"{matrix.shape[0]} vectors but ids of shape {ids.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("ids must be distinct")
    if len(matrix) and not np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-3):
        raise ValueError("vectors must be unit length (inner product is used as cosine)")


def _read_meta(directory: Path) -> IndexMeta:
    raw = json.loads((directory / META_FILE).read_text())
    if raw["kind"] not in ("flat", "hnsw"):
        raise ValueError(f"unknown index kind {raw['kind']!r}")
    return IndexMeta(kind=raw["kind"], dim=int(raw["dim"]), count=int(raw["count"]),
                     model_id=str(raw["model_id"]), created=str(raw["created"]),
                     build_id=str(raw["build_id"]))


@contextlib.contextmanager
def _omp_threads(count: int) -> Iterator[None]:
    """FAISS's OpenMP thread count for a build; searches meanwhile may use it too."""
    with _omp_lock:
        faiss.omp_set_num_threads(count)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(SEARCH_THREADS)


def _move_into_place(staging: Path, target: Path) -> None:
    """Put `staging` at `target` in one step; an index already at `target` ends up at `staging`."""
    try:
        _exchange(staging, target)
    except FileNotFoundError:
        staging.rename(target)  # no index there yet: a plain rename is atomic
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise
        # This filesystem cannot swap: move the old index aside first. A crash between the
        # two renames leaves both complete copies beside the target and none at it.
        aside = staging.with_name(staging.name + ".old")
        target.rename(aside)
        staging.rename(target)
        aside.rename(staging)


def _exchange(first: Path, second: Path) -> None:
    """Swap two paths in one step: Linux renameat2(RENAME_EXCHANGE), ext4/xfs/btrfs/tmpfs."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second),
                 rename_exchange) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(second))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
