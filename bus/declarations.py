"""Make the broker hold the topology: declare what is missing, report what differs."""

from __future__ import annotations

from dataclasses import dataclass

from bus.broker import Channel, Connection
from bus.errors import TopologyMismatch
from bus.topology import Topology


@dataclass(frozen=True)
class Declared:
    kind: str  # "exchange", "queue" or "binding"
    name: str
    detail: str = ""


async def apply_topology(
    connection: Connection, topology: Topology
) -> tuple[list[Declared], list[TopologyMismatch]]:
    """Declare every exchange, queue and binding. Idempotent; a queue that exists with other
    arguments is reported (the broker closes the channel over it) and the rest goes on."""
    channel = await connection.channel()
    declared: list[Declared] = []
    mismatches: list[TopologyMismatch] = []
    for exchange in topology.exchanges:
        await channel.declare_exchange(exchange.name, exchange.type)
        declared.append(Declared("exchange", exchange.name, exchange.type))
    for queue in topology.queues:
        try:
            await channel.declare_queue(queue.name, queue.arguments)
        except TopologyMismatch as mismatch:
            mismatches.append(mismatch)
            channel = await _fresh(connection, channel)
            continue
        declared.append(Declared("queue", queue.name, queue.kind))
        for exchange_name, pattern in queue.bindings:
            await channel.bind(queue.name, exchange_name, pattern)
            declared.append(Declared("binding", f"{exchange_name} → {queue.name}", pattern))
    await channel.close()
    return declared, mismatches


async def _fresh(connection: Connection, dead: Channel) -> Channel:
    await dead.close()
    return await connection.channel()
