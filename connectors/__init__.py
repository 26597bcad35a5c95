"""Connectors: one per local dossier system, publishing its dossiers as contract events.

The connector SDK and the built-in kinds (REST polling, SQL polling, webhook, file drop)
live here.
"""
