"""How fast one core turns a ~1 KB event's JSON into a validated model, and back.

Measured beside `orjson.loads` of the same bytes: parsing without validating is the floor
under any decoder, so the ratio is the price of the contract itself.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from argparse import ArgumentParser, Namespace
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson

from schemas import (
    Applicant,
    Dossier,
    DossierStatus,
    Source,
    StatusChanged,
    decode_event,
    encode_event,
)

TARGET_VALIDATE_PER_S = 50_000

_Arg = TypeVar("_Arg")

Result = dict[str, Any]


def an_event() -> StatusChanged:
    """A status change of about 1000 bytes as JSON: the typical message on the bus."""
    received = datetime(2024, 1, 15, 8, 30, tzinfo=UTC)
    # The wire spells out every null and empty list, so most of the bytes are field names.
    dossier = Dossier(
        code="000.00.01.H29-240115-0001",
        procedure_code="1.000894",
        procedure_name="Cấp giấy phép xây dựng",
        applicant=Applicant(name="Nguyễn Văn An", type=1, id_number="001234567889"),
        status=DossierStatus.PROCESSING,
        channel=2,
        received_at=received,
        due_at=received + timedelta(days=15),
    )
    return StatusChanged(
        event_id=uuid.UUID("7d3f1c2e-9a4b-4c5d-8e6f-0a1b2c3d4e5f"),
        occurred_at=received + timedelta(hours=3),
        source=Source(connector="igate-hcm", agency="000.00.01.H29"),
        dossier_code=dossier.code,
        seq=42,
        payload={"dossier": dossier, "previous_status": DossierStatus.RECEIVED},
    )


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=5, help="rounds per measure (default 5)")
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="length of one round (default 1.0)"
    )


def run(options: Namespace) -> Result:
    event = an_event()
    data = encode_event(event)
    if decode_event(data) != event:
        raise RuntimeError("the benchmark event does not survive encoding and decoding")
    rates = _median_rates(
        {
            "orjson_loads": lambda: _rate(orjson.loads, data, options.seconds),
            "validate": lambda: _rate(decode_event, data, options.seconds),
            "serialize": lambda: _rate(encode_event, event, options.seconds),
        },
        options.rounds,
    )
    return {
        "benchmark": "contract",
        "event_type": event.event_type,
        "event_bytes": len(data),
        "validate_per_s": round(rates["validate"]),
        "serialize_per_s": round(rates["serialize"]),
        "orjson_loads_per_s": round(rates["orjson_loads"]),
        "validate_vs_orjson_loads": round(rates["validate"] / rates["orjson_loads"], 3),
        "target_validate_per_s": TARGET_VALIDATE_PER_S,
        "rounds": options.rounds,
        "seconds_per_round": options.seconds,
        "cores": os.cpu_count(),
    }


def describe(result: Result) -> str:
    return (
        f"contract: validate {result['validate_per_s']:,}/s "
        f"(target {result['target_validate_per_s']:,}/s), "
        f"serialize {result['serialize_per_s']:,}/s, "
        f"orjson.loads {result['orjson_loads_per_s']:,}/s "
        f"(validation runs at {result['validate_vs_orjson_loads']:.1%} of it); "
        f"{result['event_bytes']}-byte {result['event_type']}, median of "
        f"{result['rounds']} x {result['seconds_per_round']} s on one core of {result['cores']}"
    )


def _median_rates(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    # Rounds take turns, so a neighbour's burst of load hits every measure alike and the
    # ratios between them hold even on a busy machine.
    rates: dict[str, list[float]] = {name: [] for name in measures}
    for round_number in range(rounds + 1):
        for name, measure in measures.items():
            rate = measure()
            if round_number:  # round 0 warms caches and the allocator
                rates[name].append(rate)
    return {name: statistics.median(found) for name, found in rates.items()}


def _rate(work: Callable[[_Arg], object], arg: _Arg, seconds: float) -> float:
    # The clock is read once per batch, so its cost stays out of the per-call figure.
    batch = 500
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            work(arg)
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)
