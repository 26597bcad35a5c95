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
    """Declare every exchange, queue and binding. Idempotent; an exchange or queue that exists
    with other arguments is reported (the broker closes the channel over it) and the rest
    goes on.

    Exchange-to-exchange bindings come last, once the queues behind them are bound: an event
    routed into the shards exchange before its shard is bound there would reach no shard,
    and, the audit stream having taken it, no publisher would hear of it."""
    channel = await connection.channel()
    declared: list[Declared] = []
    mismatches: list[TopologyMismatch] = []
    for exchange in topology.exchanges:
        try:
            await channel.declare_exchange(exchange.name, exchange.type, exchange.arguments)
        except TopologyMismatch as mismatch:
            mismatches.append(mismatch)
            channel = await _fresh(connection, channel)
            continue
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
    refused = {mismatch.name for mismatch in mismatches}
    for exchange in topology.exchanges:
        if exchange.name in refused:
            continue
        for source, pattern in exchange.bindings:
            await channel.bind_exchange(exchange.name, source, pattern)
            declared.append(Declared("binding", f"{source} → {exchange.name}", pattern))
    await channel.close()
    return declared, mismatches


async def _fresh(connection: Connection, dead: Channel) -> Channel:
    await dead.close()
    return await connection.channel()
