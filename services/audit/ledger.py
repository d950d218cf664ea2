"""The audit ledger: every service's events, in one hash chain, with a Merkle tree over it.

Each entry is a source event as its producer recorded and signed it (the
envelope's fields, its ``hash`` as ``source_hash`` and its ``signature``)
plus the ledger's own fields: ``position``, the ``customer_id`` the event
belongs to, ``ingested_at``, and ``prev_hash``/``hash`` chaining the
entries. An entry's ``hash`` is SHA-256 of ``entry_text`` and is also the
data of its Merkle leaf (``leaf_hash(bytes.fromhex(hash))``). An event
about several customers lists them in its data's ``customer_ids``: its
entry's ``customer_id`` stays empty and each of them is indexed in
``audit_ledger_customers`` (customer, position), in the entry's
transaction.

The tree is stored as its complete nodes above the leaves (``audit_tree``:
level, index, hash); a node is written once, when its last leaf arrives, so
that table is as append-only as the ledger. A tree head or a proof then
reads O(log n) nodes (``services.audit.merkle``). The appender keeps the
frontier (the roots of the perfect subtrees, O(log n) hashes) between
batches, checked against the ledger's head each time, so memory stays flat
however long the ledger grows.

``verify`` recomputes, from the stored columns, each source event's hash,
each source's chain (prev_hash, contiguous positions), the ledger's chain
and the producers' signatures (sampled: a good signature vouches for the
source chain before it), and names the first bad position and why.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, and_, func, or_, select
from sqlalchemy.engine import Connection, Engine

from services.audit import merkle
from shared.canonical import GENESIS_HASH, canonical_json
from shared.eventstore.engine import paramstyle, pooled_cursor
from shared.eventstore.envelope import Envelope, actor_json, hash_input, parse_json, utc_now_iso
from shared.eventstore.store import VerifyReport as StoreVerifyReport
from shared.signing import ServiceKeys

metadata = MetaData()
POSITION = BigInteger().with_variant(Integer(), "sqlite")
ledger = Table(
    "audit_ledger", metadata,
    Column("position", POSITION, primary_key=True, autoincrement=False),
    Column("source_service", String(32), nullable=False),
    Column("source_position", BigInteger, nullable=False),
    Column("type", String(100), nullable=False),
    Column("stream_id", String(120), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("customer_id", String(64)),
    Column("source_prev_hash", String(64), nullable=False),
    Column("source_hash", String(64), nullable=False),
    Column("signature", String(100), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("ingested_at", String(32), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
# The customers an event lists in ``customer_ids`` (a batch); append-only like the ledger.
ledger_customers = Table(
    "audit_ledger_customers", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("position", POSITION, primary_key=True, autoincrement=False),
)
tree = Table(
    "audit_tree", metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", POSITION, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
)

SIGNATURE_SAMPLE = 1000  # per source: one good signature vouches for the source chain before it
VERIFY_PAGE = 5000
STREAM_CUSTOMERS_CACHED = 20_000
_scan_json = json.JSONDecoder().scan_once  # json's C scanner, without loads' wrappers
APPEND_LOCK = 0x617564_6974  # PostgreSQL advisory lock around an append ("audit")

# An entry's columns as stored; ``envelope`` is the source event's canonical JSON without ``hash`` and
# ``signature``: exactly the text its producer hashed, so checking it costs one SHA-256 and no parsing.
_STORED = ("position", "source_service", "source_position", "type", "stream_id", "recorded_at", "customer_id",
           "source_prev_hash", "source_hash", "signature", "envelope", "ingested_at", "prev_hash", "hash")
_CHAIN = ("position", "prev_hash", "hash", "ingested_at", "customer_id", "source_service", "source_position",
          "source_prev_hash", "source_hash", "signature", "type", "stream_id", "recorded_at", "envelope")
_SERVICE, _SOURCE_HASH, _SIGNATURE = (_CHAIN.index(name) for name in ("source_service", "source_hash", "signature"))
_ENVELOPE = ("position", "envelope", "source_hash", "signature", "customer_id", "ingested_at", "prev_hash", "hash")
_ACTOR_KEYS = frozenset(("id", "role"))


def entry_text(position: int, prev_hash: str, ingested_at: str, customer_id: str | None, source_service: str,
               source_position: int, source_prev_hash: str, source_hash: str, signature: str, event_type: str,
               stream_id: str, recorded_at: str) -> str:
    """What a ledger entry's hash covers: its place, the chain, the source event's hash and signature, and
    the columns replay filters on.

    The source hash covers the event's whole content, so the entry covers
    it too without repeating it.
    """
    return (f"carecrm audit ledger v1\n{position}\n{prev_hash}\n{ingested_at}\n{customer_id or ''}\n"
            f"{source_service}\n{source_position}\n{source_prev_hash}\n{source_hash}\n{signature}\n"
            f"{event_type}\n{stream_id}\n{recorded_at}")


def entry_hash(*fields: Any) -> str:
    return hashlib.sha256(entry_text(*fields).encode()).hexdigest()


def leaf_of(entry_hash_hex: str) -> bytes:
    """The Merkle leaf hash of a ledger entry."""
    return merkle.leaf_hash(bytes.fromhex(entry_hash_hex))


def customer_in(envelope: Envelope) -> str | None:
    """The customer an event names in its data, if it names one."""
    value = envelope.data.get("customer_id") if isinstance(envelope.data, dict) else None
    return value if isinstance(value, str) and value else None


def customers_listed(envelope: Envelope) -> list[str]:
    """The customers an event about several of them lists in its data's ``customer_ids``, once each."""
    listed = envelope.data.get("customer_ids") if isinstance(envelope.data, dict) else None
    if not isinstance(listed, list):
        return []
    return list(dict.fromkeys(value for value in listed if isinstance(value, str) and value))


def envelope_text(envelope: Envelope) -> str:
    """The canonical JSON its producer hashed: the envelope without ``hash`` and ``signature``."""
    actor = envelope.actor
    return hash_input(actor_json(actor["id"], actor["role"]) if actor.keys() == _ACTOR_KEYS else canonical_json(actor),
                      envelope.causation_id, envelope.correlation_id, canonical_json(envelope.data),
                      envelope.event_id, envelope.occurred_at, envelope.position, envelope.prev_hash,
                      envelope.recorded_at, envelope.schema_version, envelope.service, envelope.stream_id,
                      envelope.stream_version, envelope.type)


@dataclass(frozen=True)
class VerifyReport(StoreVerifyReport):
    """The store's report, and the source service the first bad entry came from."""

    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "source": self.source}


class Ledger:
    """Appends to, reads and verifies the ledger of one database."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._frontier: tuple[tuple[int, str], merkle.Frontier] | None = None  # (head it belongs to, frontier)
        self._stream_customers: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()
        # verify hashes the stored envelope as it is, so it is read as bytes: no decoding and encoding again
        raw_envelope = "CAST(envelope AS BLOB)" if engine.dialect.name == "sqlite" else "convert_to(envelope, 'UTF8')"
        self._sql = {name: paramstyle(engine, text) for name, text in {
            "chain": f"SELECT {', '.join(_CHAIN[:-1])}, {raw_envelope} FROM audit_ledger "
                     "WHERE position > ? AND position <= ? ORDER BY position LIMIT ?",
            "envelopes": f"SELECT {', '.join(_ENVELOPE)} FROM audit_ledger WHERE position > ? AND position <= ? "
                         "ORDER BY position LIMIT ?",
            "insert_entry": f"INSERT INTO audit_ledger ({', '.join(_STORED)}) VALUES ({', '.join('?' * len(_STORED))})",
            "insert_node": "INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)",
            "insert_customer": "INSERT INTO audit_ledger_customers (customer_id, position) VALUES (?, ?)",
        }.items()}

    # -- appending ------------------------------------------------------------

    def append(self, connection: Connection, envelopes: Sequence[Envelope],
               ingested_at: str | None = None) -> list[tuple[int, str]]:
        """Add checked events to the ledger in the caller's transaction; their ``(position, hash)``.

        On PostgreSQL an advisory lock keeps replicas' appends apart, so
        positions are given in commit order; SQLite's write transaction
        already does.
        """
        if not envelopes:
            return []
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})")
        head = connection.execute(select(ledger.c.position, ledger.c.hash)
                                  .order_by(ledger.c.position.desc()).limit(1)).first()
        position, prev = (head[0], head[1]) if head is not None else (0, GENESIS_HASH)
        with self._lock:
            frontier = self._frontier_at(connection, position, prev)
        ingested_at = ingested_at or utc_now_iso()
        rows, nodes, appended, listed = [], [], [], []
        known: dict[tuple[str, str], str] = {}
        for envelope in envelopes:
            position += 1
            several = customers_listed(envelope)
            if several:
                customer_id = None
                listed.extend((customer, position) for customer in several)
            else:
                customer_id = self._customer_of(connection, envelope, known)
            text = envelope_text(envelope)
            if hashlib.sha256(text.encode()).hexdigest() != envelope.hash:
                raise ValueError(f"the {envelope.service} event at {envelope.position} does not match its hash")
            current = entry_hash(position, prev, ingested_at, customer_id, envelope.service, envelope.position,
                                 envelope.prev_hash, envelope.hash, envelope.signature, envelope.type,
                                 envelope.stream_id, envelope.recorded_at)
            rows.append((position, envelope.service, envelope.position, envelope.type, envelope.stream_id,
                         envelope.recorded_at, customer_id, envelope.prev_hash, envelope.hash, envelope.signature,
                         text, ingested_at, prev, current))
            nodes.extend((level, index, value.hex()) for level, index, value in frontier.append(leaf_of(current)))
            appended.append((position, current))
            prev = current
        cursor = connection.connection.dbapi_connection.cursor()  # the transaction's own; Core costs ~20 µs a row
        try:
            cursor.executemany(self._sql["insert_entry"], rows)
            if nodes:
                cursor.executemany(self._sql["insert_node"], nodes)
            if listed:
                cursor.executemany(self._sql["insert_customer"], listed)
        finally:
            cursor.close()
        with self._lock:
            self._frontier = ((position, prev), frontier)  # trusted only while the head is this one
        return appended

    def _frontier_at(self, connection: Connection, size: int, head_hash: str) -> merkle.Frontier:
        """The frontier of the tree of ``size`` leaves: the cached one if it belongs to this head, else read."""
        if self._frontier is not None and self._frontier[0] == (size, head_hash):
            return self._frontier[1].copy()
        shape = merkle.Frontier.shape(size)
        nodes = self.nodes(connection, shape)
        return merkle.Frontier(size, [nodes[key] for key in shape])

    def _customer_of(self, connection: Connection, envelope: Envelope, known: dict[tuple[str, str], str]) -> str | None:
        """The customer an event belongs to: named in its data, or the one its stream's earlier events named."""
        stream = (envelope.service, envelope.stream_id)
        named = customer_in(envelope)
        if named is not None:
            known.setdefault(stream, named)
            return named
        if stream in known:
            return known[stream]
        cached = self._stream_customers.get(stream)
        if cached is None:
            cached = connection.execute(select(ledger.c.customer_id).where(
                ledger.c.source_service == stream[0], ledger.c.stream_id == stream[1],
                ledger.c.customer_id.is_not(None)).order_by(ledger.c.position).limit(1)).scalar()
            if cached is None:
                return None
            self._stream_customers[stream] = cached
            if len(self._stream_customers) > STREAM_CUSTOMERS_CACHED:
                self._stream_customers.popitem(last=False)
        known[stream] = cached
        return cached

    # -- the tree -------------------------------------------------------------

    def nodes(self, connection: Connection, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The tree nodes ``(level, index)``, read in at most two queries (leaves from the ledger)."""
        keys = set(keys)
        found: dict[tuple[int, int], bytes] = {}
        leaves = [index + 1 for level, index in keys if level == 0]
        if leaves:
            for position, value in connection.execute(select(ledger.c.position, ledger.c.hash)
                                                      .where(ledger.c.position.in_(leaves))):
                found[(0, position - 1)] = leaf_of(value)
        inner = [(level, index) for level, index in keys if level > 0]
        if inner:
            condition = or_(*(and_(tree.c.level == level, tree.c.idx == index) for level, index in inner))
            for level, index, value in connection.execute(select(tree.c.level, tree.c.idx, tree.c.hash)
                                                          .where(condition)):
                found[(level, index)] = bytes.fromhex(value)
        missing = keys - found.keys()
        if missing:
            raise LookupError(f"the ledger's tree lacks nodes {sorted(missing)[:3]}: entries are missing")
        return found

    def computed(self, connection: Connection, compute: Callable[[merkle.NodeSource], Any]) -> Any:
        """``compute(node)`` over the stored tree, its nodes fetched at once."""
        nodes = self.nodes(connection, merkle.nodes_needed(compute))
        return compute(lambda level, index: nodes[(level, index)])

    def size(self, connection: Connection) -> int:
        return connection.execute(select(func.coalesce(func.max(ledger.c.position), 0))).scalar_one()

    def root(self, connection: Connection, size: int) -> bytes:
        return self.computed(connection, lambda node: merkle.root_hash(node, size))

    def inclusion(self, connection: Connection, position: int, size: int) -> dict[str, Any]:
        """The inclusion proof of the entry at ``position`` in the tree of ``size`` entries."""
        path = self.computed(connection, lambda node: merkle.inclusion_path(node, position - 1, size))
        leaf = self.nodes(connection, [(0, position - 1)])[(0, position - 1)]
        return {"leaf_index": position - 1, "leaf_hash": leaf.hex(), "tree_size": size,
                "path": [value.hex() for value in path]}

    def consistency(self, connection: Connection, old_size: int, new_size: int) -> list[str]:
        return [value.hex() for value in
                self.computed(connection, lambda node: merkle.consistency_path(node, old_size, new_size))]

    # -- reading --------------------------------------------------------------

    def entries(self, after: int, upto: int | None = None, page: int = VERIFY_PAGE) -> Iterator[dict[str, Any]]:
        """Every entry after ``after`` (up to ``upto``), as ``entry_view`` dicts, page by page.

        The loop is ``entry_view`` inlined: at a few microseconds an entry,
        a call and a keyword ``update`` per entry are a tenth of the time.
        """
        scan = _scan_json
        for rows in self._pages(self._sql["envelopes"], after, upto, page):
            for position, text, source_hash, signature, customer_id, ingested_at, prev_hash, current in rows:
                try:
                    view, end = scan(text, 0)
                except StopIteration:
                    end = -1
                if end != len(text):
                    view = parse_json(text)  # not one JSON value: raise json's own error
                view["hash"] = source_hash
                view["signature"] = signature
                view["ledger_position"] = position
                view["customer_id"] = customer_id
                view["ingested_at"] = ingested_at
                view["ledger_prev_hash"] = prev_hash
                view["ledger_hash"] = current
                yield view

    def _pages(self, sql: str, after: int, upto: int | None, page: int) -> Iterator[list[tuple]]:
        """Keyset pages of ``sql`` (positions after, up to, limit): each one short read on a pooled connection.

        No transaction stays open between pages and the ledger is never all
        in memory. (Mapping the SQLite file, ``mmap_size``, saved a few per
        cent but left every page read resident in the process: memory would
        grow with the ledger.)
        """
        upto = upto if upto is not None else 2**63 - 1
        while True:
            with pooled_cursor(self.engine) as cursor:
                cursor.execute(sql, (after, upto, page))
                rows = cursor.fetchall()
            if rows:
                yield rows
            if len(rows) < page:
                return
            after = rows[-1][0]

    # -- verifying ------------------------------------------------------------

    def verify(self, keys: ServiceKeys, from_position: int = 1, to_position: int | None = None, *,
               every_signature: bool = False, ingested_up_to: Mapping[str, int] | None = None) -> VerifyReport:
        """Recompute the chains and check signatures from ``from_position``; the first bad position and why.

        ``ingested_up_to`` (source -> position, from the ingest's tracking)
        catches entries cut from the end: a source ingested further than the
        ledger holds lost its last entries.
        """
        from_position = max(from_position, 1)
        expected_prev = GENESIS_HASH
        if from_position > 1:
            with self.engine.connect() as connection:
                expected_prev = connection.execute(select(ledger.c.hash).where(
                    ledger.c.position == from_position - 1)).scalar()
            if expected_prev is None:
                return VerifyReport(False, 0, from_position - 1, f"missing: ledger position {from_position - 1}")
        sources: dict[str, list] = {}  # source -> [last source position, its hash, entries not vouched for yet]
        sample = 1 if every_signature else SIGNATURE_SAMPLE
        sha256, signed_by = hashlib.sha256, keys.signed_by
        expected, checked = from_position, 0
        service_now, state = None, None  # the source of the entry before: consecutive entries mostly share one
        for rows in self._pages(self._sql["chain"], from_position - 1, to_position, VERIFY_PAGE):
            for row in rows:
                (position, prev_hash, stored, ingested_at, customer_id, service, source_position, source_prev,
                 source_hash, signature, event_type, stream_id, recorded_at, text) = row
                if service != service_now:
                    state = sources.get(service)
                    if state is None:
                        state = sources[service] = self._source_state(service, from_position)
                    service_now = service
                if (position != expected or prev_hash != expected_prev or source_position != state[0] + 1
                        or source_prev != state[1]
                        or sha256(text).hexdigest() != source_hash
                        or sha256(f"carecrm audit ledger v1\n{position}\n{prev_hash}\n{ingested_at}\n"
                                  f"{customer_id or ''}\n{service}\n{source_position}\n{source_prev}\n"
                                  f"{source_hash}\n{signature}\n{event_type}\n{stream_id}\n{recorded_at}"
                                  .encode()).hexdigest() != stored):
                    pending = {name: entry[2] for name, entry in sources.items()}
                    return self._signatures_first(keys, pending) or self._first_problem(
                        row, expected, expected_prev, state, checked)
                state[0] = source_position
                state[1] = source_hash
                waiting = state[2]
                waiting.append(row)
                if len(waiting) >= sample:
                    if not signed_by(service, source_hash, signature):
                        return self._signatures_first(keys, {service: waiting})
                    waiting.clear()
                expected_prev = stored
                expected += 1
                checked += 1
        bad = self._signatures_first(keys, {name: entry[2] for name, entry in sources.items()}, last_only=True)
        if bad is not None:
            return bad
        if to_position is None:
            held = {name: (entry[0], entry[1]) for name, entry in sources.items()}
            cut = self._cut_short(held, expected - 1, ingested_up_to or {}, from_position)
            if cut is not None:
                return VerifyReport(False, checked, expected, cut[1], cut[0])
        return VerifyReport(True, checked)

    def _source_state(self, service: str, from_position: int) -> list:
        """Where a source's chain stands before ``from_position``: its last position and hash in the ledger."""
        last = self._source_before(service, from_position) if from_position > 1 else None
        return [*(last if last is not None else (0, GENESIS_HASH)), []]

    def _first_problem(self, row: tuple, expected: int, expected_prev: str, state: list,
                       checked: int) -> VerifyReport:
        """What is wrong with the first entry that failed a check, named in the order the checks matter."""
        (position, prev_hash, stored, ingested_at, customer_id, service, source_position, source_prev,
         source_hash, signature, event_type, stream_id, recorded_at, text) = row
        last_position, last_hash = state[0], state[1]
        if position != expected:
            return VerifyReport(False, checked, expected, f"missing: ledger position {expected} (the next is {position})")
        if hashlib.sha256(text).hexdigest() != source_hash:  # ``text`` is read as bytes
            return VerifyReport(False, checked, position, f"edited: the {service} event at source position "
                                                          f"{source_position} does not match its hash", service)
        if prev_hash != expected_prev or entry_hash(position, prev_hash, ingested_at, customer_id, service,
                                                    source_position, source_prev, source_hash, signature,
                                                    event_type, stream_id, recorded_at) != stored:
            return self._out_of_place(position, prev_hash, service, checked)
        if source_position != last_position + 1:
            what = "reordered" if source_position <= last_position else "missing"
            return VerifyReport(False, checked, position, f"{what}: the {service} event at source position "
                                f"{source_position} follows source position {last_position} in the ledger", service)
        return VerifyReport(False, checked, position, f"reordered: the {service} event at source position "
                            f"{source_position} does not continue the {service} chain (its log was recomputed)",
                            service)

    def _signatures_first(self, keys: ServiceKeys, unvouched: Mapping[str, list[tuple]],
                          last_only: bool = False) -> VerifyReport | None:
        """The first entry of ``unvouched`` whose producer's signature does not verify, if any.

        With ``last_only``, each source's last signature is checked first and
        the rest only if it fails (a good one vouches for them through the chain).
        """
        suspects = []
        for service, waiting in unvouched.items():
            if not waiting:
                continue
            if last_only and keys.signed_by(service, waiting[-1][_SOURCE_HASH], waiting[-1][_SIGNATURE]):
                continue
            suspects.extend(waiting)
        for row in sorted(suspects, key=lambda row: row[0]):  # by ledger position
            position, service, source_hash, signature = (row[0], row[_SERVICE], row[_SOURCE_HASH], row[_SIGNATURE])
            if not keys.signed_by(service, source_hash, signature):
                return VerifyReport(False, 0, position, f"bad signature: the {service} event at this position is "
                                                        f"not signed by {service}'s key", service)
        return None

    def _out_of_place(self, position: int, prev_hash: str, service: str, checked: int) -> VerifyReport:
        """An entry whose ledger chain breaks: moved from elsewhere (reordered) or changed (edited)."""
        with self.engine.connect() as connection:
            follows = connection.execute(select(ledger.c.position).where(ledger.c.hash == prev_hash)).scalar()
        if follows is not None and follows != position - 1:
            return VerifyReport(False, checked, position, f"reordered: the entry at {position} belongs after "
                                                          f"ledger position {follows}", service)
        return VerifyReport(False, checked, position, "edited: the entry does not match its ledger hash", service)

    def _source_before(self, service: str, position: int) -> tuple[int, str] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(ledger.c.source_position, ledger.c.source_hash).where(
                ledger.c.source_service == service, ledger.c.position < position)
                .order_by(ledger.c.position.desc()).limit(1)).first()
        return (row[0], row[1]) if row is not None else None

    def _cut_short(self, sources: Mapping[str, tuple[int, str]], head: int, ingested_up_to: Mapping[str, int],
                   from_position: int) -> tuple[str | None, str] | None:
        """Why entries are missing from the end of the ledger, if they are."""
        for service, ingested in sorted(ingested_up_to.items()):
            held = sources.get(service)
            if held is None and from_position > 1:
                held = self._source_before(service, from_position + 1)
            held_position = held[0] if held is not None else 0
            if held_position < ingested:
                return service, (f"missing: ledger entries after position {head} (the ledger holds {service} up to "
                                 f"{held_position}, its ingest reached {ingested})")
        with self.engine.connect() as connection, connection.begin():  # one snapshot: appends may go on
            widest = connection.execute(select(func.max(tree.c.idx)).where(tree.c.level == 1)).scalar()
            now = self.size(connection)
        if widest is not None and 2 * (widest + 1) > now:
            return None, (f"missing: ledger entries after position {now} (the Merkle tree covers "
                          f"{2 * (widest + 1)} entries)")
        return None


def entry_view(row: Sequence[Any]) -> dict[str, Any]:
    """A ledger entry as replay, history and exports show it: the source envelope plus the ledger's fields.

    ``row`` holds the ``ENVELOPE_COLUMNS``; the envelope's text is parsed in one go.
    """
    position, text, source_hash, signature, customer_id, ingested_at, prev_hash, current = row
    view = parse_json(text)
    view.update(hash=source_hash, signature=signature, ledger_position=position, customer_id=customer_id,
                ingested_at=ingested_at, ledger_prev_hash=prev_hash, ledger_hash=current)
    return view


def entry_views(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    return [entry_view(row) for row in rows]


ENVELOPE_COLUMNS = _ENVELOPE
