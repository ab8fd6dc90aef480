"""The entries of the run index (:mod:`molexp.core.records.index`): a run's summary
as the index keeps it (:func:`summarise`, the columns of :class:`Rest`), and
:class:`Entry`, one readable run as the index last validated it, whose fields a
listing reads without decoding more than it shows (:func:`flat_field`).
"""

from __future__ import annotations

import json
import operator
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from molexp.core.records.runs import RUN_FILE, STATUSES, load_record
from molexp.core.records.signatures import signature as _signature
from molexp.core.store import files as store
from molexp.errors import CorruptRecordError

INDEX_DIR = ".molexp/index"
SUFFIX = ".idx"
# Record keys a summary leaves out (long lists), and the two it adds instead.
DROPPED = ("attempts", "inputs", "notes")
SUMMARY_ONLY = ("attempt_count", "last_attempt")
LAST_ATTEMPT_KEYS = ("n", "status", "exit_code", "duration", "executor", "host")
# The Rest fields Entry.brief_texts gives, in this order.
BRIEF_REST = ("replica", "profile", "updated_at", "other", "attempt_count", "last_attempt")
# The record keys every summary has (None when a record lacks one), in record order.
KNOWN = (
    "schema_version", "id", "project", "experiment", "identity", "params", "replica",
    "seed", "profile", "config", "config_hash", "status", "created_at", "updated_at",
    "results", "metrics",
)  # fmt: skip
_KNOWN = frozenset(KNOWN)

# An index file is three parts, one per line, then one line per run:
#   molexp-run-index FORMAT MOLEXP_VERSION SCHEMA_VERSION XXH3_128(rest of the file)
#   {"project": ..., "experiment": ..., "values": [distinct params and configs]}
#   RUN_ID <TAB> MTIME_NS CTIME_NS INO SIZE <TAB> STATUS <TAB> CREATED_AT <TAB>
#       PARAMS_REF <TAB> CONFIG_REF <TAB> RESULTS <TAB> METRICS <TAB> REST
# Lines are split only when needed (plain text is much faster to load than JSON
# for 100,000 runs).  *_REF index ``values`` (replicas share their params and
# config); RESULTS and METRICS are the record's ``results`` and ``metrics`` (the last
# value of each metric, SPEC §14) as JSON, columns of their own so that `--where`
# and `--sort` on them parse only them (:meth:`Entry.leaf`); REST is the fields of
# :class:`Rest`, each as JSON in a column of its own (a table decodes only the few it
# shows, and equal texts once: :meth:`Entry.brief_texts`).  JSON escapes tabs and newlines, so no JSON column holds one; runs
# whose id or created_at would are not stored.


class Rest(NamedTuple):
    """The REST columns of an index line: the summary fields beyond id, status,
    created_at, params, config, results and metrics (JSON, one column each, in this
    order)."""

    identity: Any
    replica: Any
    seed: Any
    profile: Any
    config_hash: Any
    updated_at: Any
    other: dict[str, Any] | None  # keys of the record that KNOWN does not list
    attempt_count: int
    last_attempt: list[Any] | None  # LAST_ATTEMPT_KEYS of the latest attempt

    @classmethod
    def of(cls, record: dict[str, Any]) -> Rest:
        attempts = record.get("attempts") or []
        last = attempts[-1] if attempts and isinstance(attempts[-1], dict) else None
        other = {k: v for k, v in record.items() if k not in _KNOWN and k not in DROPPED}
        return cls(
            record.get("identity"), record.get("replica"), record.get("seed"),
            record.get("profile"), record.get("config_hash"), record.get("updated_at"),
            other or None, len(attempts),
            [last.get(k) for k in LAST_ATTEMPT_KEYS] if last else None,
        )  # fmt: skip


def summarise(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its long lists: every :data:`KNOWN` key, any other keys
    but ``attempts``/``inputs``, then ``attempt_count`` and ``last_attempt``
    (:data:`LAST_ATTEMPT_KEYS` of the latest attempt).  What a table shows."""
    out = {k: record.get(k) for k in KNOWN}
    out.update((k, v) for k, v in record.items() if k not in _KNOWN and k not in DROPPED)
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts and isinstance(attempts[-1], dict) else None
    out["attempt_count"] = len(attempts)
    out["last_attempt"] = {k: last.get(k) for k in LAST_ATTEMPT_KEYS} if last else None
    return out


# How every run.json molexp writes begins (store.dumps_json of a current record).
_RAW_HEAD = b'{\n  "schema_version": %d,\n' % store.SCHEMA_VERSION


class _Experiment:
    """What every entry of one experiment shares."""

    __slots__ = ("project", "experiment", "runs_dir", "values", "prefix")

    def __init__(self, project: str, experiment: str, runs_dir: Path, values: list[Any]) -> None:
        self.project = project
        self.experiment = experiment
        self.runs_dir = runs_dir
        self.values = values  # the index's distinct params and configs
        self.prefix = f"{project}/{experiment}/"


class Entry(tuple[str, str, str, Any, str, "str | None", _Experiment]):
    """One readable run as the index last validated it: cheap fields now, its
    summary (parsed from the index) or full record (read now) on demand.

    A tuple ``(ref, id, status, created_at, tail, signature, experiment)``: a listing
    of 100,000 runs makes them with ``map`` and reads them with ``itemgetter``,
    never running Python code per run (:func:`scan_experiment`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        ref: str
        id: str
        status: str
        created_at: Any
        _tail: str  # "PARAMS_REF <TAB> CONFIG_REF <TAB> RESULTS <TAB> METRICS <TAB> REST..."
        _sig: str | None  # of the run.json validated, when not too recent to trust
        _exp: _Experiment
    else:
        ref = property(operator.itemgetter(0))
        id = property(operator.itemgetter(1))
        status = property(operator.itemgetter(2))
        created_at = property(operator.itemgetter(3))
        _tail = property(operator.itemgetter(4))
        _sig = property(operator.itemgetter(5))
        _exp = property(operator.itemgetter(6))

    @classmethod
    def make(
        cls, run_id: str, status: str, created_at: Any, tail: str, exp: _Experiment,
        signature: str | None = None,
    ) -> Entry:  # fmt: skip
        return cls((exp.prefix + run_id, run_id, status, created_at, tail, signature, exp))

    @property
    def project(self) -> str:
        return self[6].project

    @property
    def experiment(self) -> str:
        return self[6].experiment

    @property
    def _values(self) -> list[Any]:
        return self[6].values

    @property
    def _runs(self) -> Path:
        return self[6].runs_dir

    @property
    def run_dir(self) -> Path:
        return self[6].runs_dir / self[1]

    def record(self) -> dict[str, Any]:
        """The full record, read (and validated) now."""
        return load_record(self._runs / self.id / RUN_FILE, self.project, self.experiment)

    def raw_json(self) -> bytes | None:
        """The bytes of ``run.json`` when they are still those the index validated,
        as molexp wrote them (else None: read and validate with :meth:`record`).

        Same signature (mtime, ctime, inode, size) before and after the read, and
        not too recent to trust (see RACY_NS): the file is the one validated.
        Hand-edited layouts and older schemas take the slow path, so what is
        printed is always what :meth:`record` would give, byte for byte."""
        if self._sig is None:
            return None
        try:  # plain os calls: pathlib and io objects cost more than the read itself
            fd = os.open(f"{self._runs}/{self.id}/{RUN_FILE}", os.O_RDONLY)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if _signature(st) != self._sig:
                return None
            data = os.read(fd, st.st_size + 1)
            if len(data) != st.st_size or _signature(os.fstat(fd)) != self._sig:
                return None
        except OSError:
            return None
        finally:
            os.close(fd)
        return data if data.startswith(_RAW_HEAD) and data.endswith(b"\n}\n") else None

    def brief_texts(self) -> tuple[Any, str, str, str, str, str, str]:
        """``(params, REPLICA, PROFILE, UPDATED_AT, OTHER, ATTEMPT_COUNT, LAST_ATTEMPT)``:
        the params and the JSON texts of the :class:`Rest` columns a table shows, for a
        caller that decodes equal texts once (100,000 runs share few of them)."""
        parts = self._tail.split("\t")
        try:
            if len(parts) != _COLUMNS:
                raise IndexError(len(parts))
            return (self._values[int(parts[0])], *_brief(parts))
        except (ValueError, IndexError) as exc:  # only a forged index gets here
            raise self._forged() from exc

    def summary(self) -> dict[str, Any]:
        """:func:`summarise` of the record as validated (params and config may be
        shared with other summaries: treat them as read-only)."""
        try:
            params_ref, config_ref, results, metrics, rest_json = self._tail.split("\t", 4)
            params = self._values[int(params_ref)]
            config = self._values[int(config_ref)]
            rest = Rest(*json.loads("[" + rest_json.replace("\t", ",") + "]"))
            out: dict[str, Any] = {
                "schema_version": store.SCHEMA_VERSION,  # records are migrated on read
                "id": self.id,
                "project": self.project,
                "experiment": self.experiment,
                "identity": rest.identity,
                "params": params,
                "replica": rest.replica,
                "seed": rest.seed,
                "profile": rest.profile,
                "config": config,
                "config_hash": rest.config_hash,
                "status": self.status,
                "created_at": self.created_at,
                "updated_at": rest.updated_at,
                "results": json.loads(results),
                "metrics": json.loads(metrics),
                **(rest.other or {}),
                "attempt_count": rest.attempt_count,
                "last_attempt": None
                if rest.last_attempt is None
                else dict(zip(LAST_ATTEMPT_KEYS, rest.last_attempt)),
            }
        except (ValueError, IndexError, TypeError) as exc:  # only a forged index gets here
            raise self._forged() from exc
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """``summary().get(key, default)``, parsing only what ``key`` needs: ``params``,
        ``config``, ``results``, ``metrics`` and the fields of the index line cost
        their own parsing (what `--where 'results.y>0.5'` over 100,000 runs
        needs); other keys parse the summary (not kept: a listing holds 100,000
        entries)."""
        if key == "status":
            return self.status
        if key in ("params", "config", "results", "metrics"):
            try:
                parts = self._tail.split("\t", 4)
                if key == "params" or key == "config":
                    return self._values[int(parts[0 if key == "params" else 1])]
                return json.loads(parts[2 if key == "results" else 3])
            except (ValueError, IndexError, TypeError) as exc:
                raise self._forged() from exc
        if key in _ATTRIBUTES:
            return getattr(self, key)
        if key in _REST:
            parts = self._tail.split("\t")
            try:
                if len(parts) != _COLUMNS:
                    raise IndexError(len(parts))
                return json.loads(parts[4 + Rest._fields.index(key)])
            except (ValueError, IndexError, TypeError) as exc:
                raise self._forged() from exc
        return self.summary().get(key, default)

    def leaf(self, section: str, name: str, default: Any) -> Any:
        """``get(section)[name]`` (``default`` when missing) for ``results`` and
        ``metrics``, read from the index line without decoding the whole column
        when it is a flat object (:func:`flat_field`)."""
        parts = self._tail.split("\t", 4)
        try:
            column = parts[2 if section == "results" else 3]
        except IndexError as exc:
            raise self._forged() from exc
        found = flat_field(column, name, default)
        if found is _SLOW:
            node = self.get(section)
            return node.get(name, default) if type(node) is dict else default
        return found

    def _forged(self) -> CorruptRecordError:
        return CorruptRecordError(
            f"{INDEX_DIR}/{self.project}/{self.experiment}{SUFFIX}",
            "is inconsistent",
            "Delete the workspace's .molexp/index/ (derived data: it is rebuilt).",
        )


_SHARED = {status: status for status in STATUSES}
_by_id = operator.attrgetter("id")
_ATTRIBUTES = frozenset({"id", "project", "experiment", "created_at"})
_COLUMNS = 4 + len(Rest._fields)  # of a tail
_brief = operator.itemgetter(*(4 + Rest._fields.index(k) for k in BRIEF_REST))
_REST = frozenset({"identity", "replica", "seed", "profile", "config_hash", "updated_at"})
_SLOW: Any = object()  # flat_field: decode the whole column instead
_UNQUOTED = {"true": True, "false": False, "null": None}


def flat_field(column: str, name: str, default: Any) -> Any:
    """The value of key ``name`` in ``column``, a JSON object as :func:`_compact`
    writes it, without decoding the whole object: when it is flat (no other ``{``
    or ``[``) and holds no escape, a key can only appear as ``"name":`` and a text
    value has no quote inside, so the value is found by position.  Returns
    ``default`` when the key (or the object) is missing, ``_SLOW`` when the fast
    path does not apply.  ``tests/core/records/test_index.py`` checks it against
    ``json.loads`` on generated objects."""
    if column == "null":
        return default
    if "\\" in column or "[" in column or column.count("{") != 1 or '"' in name or "\\" in name:
        return _SLOW
    token = f'"{name}":'
    start = column.find(token)
    if start < 0:
        return default
    start += len(token)
    try:
        if column[start] == '"':
            return column[start + 1 : column.index('"', start + 1)]
        comma = column.find(",", start)
        text = column[start : column.find("}", start) if comma < 0 else comma]
        if text in _UNQUOTED:
            return _UNQUOTED[text]
        if "." in text or "e" in text or "E" in text or "I" in text or "N" in text:
            return float(text)  # (Infinity, NaN too)
        return int(text)
    except (IndexError, ValueError):  # not as _compact writes: decode it all
        return _SLOW
