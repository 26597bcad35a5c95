"""The sync service's parts: the per-dossier state store, the national portal's client, and
what keeps that client polite (a token bucket for the portal's rate limits, a circuit breaker
for when the portal is down)."""
