"""Connectors: one per local dossier system, publishing its dossiers as contract events.

`connectors.sample` generates seeded, realistic dossier lifecycles for tests, benchmarks and
demonstrations. The connector SDK and the built-in kinds (REST polling, SQL polling,
webhook, file drop) are still to be built here.
"""
