"""Connectors: one per local dossier system, publishing its dossiers as contract events.

    source ──records──▶ mapping ──events──▶ outbox (+ cursor) ──relay──▶ RabbitMQ

- `config`: the team's TOML file, checked with one readable line per mistake;
- `source`: what a connector reads from (`PollSource`, `PushSource`), for unusual systems;
- `kinds`: the built-in sources: `rest_poll`, `sql_poll`, `webhook`, `file_drop`;
- `mapping`: a local record to a contract event (fields, lists, status codes, time zone, seq);
- `outbox`: the durable state: events, cursor, versions sent, rejects, in one SQLite file;
- `relay`: outbox rows to the broker, forgotten only once confirmed;
- `heartbeat`: the connector's pulse, for operators;
- `runner`: `Connector`, all of it on one event loop (`bus connector run`);
- `conformance`: `bus connector check`, the run a team does before go-live;
- `failpoints`: where the crash tests kill the process;
- `sample`: sample local systems for tests, benchmarks and `make demo`.

`docs/connectors.md` is the guide for the teams who configure them.
"""
