"""The operator web console (`bus console`): the flow per unit, queues and connectors, the
dead-letter browser with replay and discard, and the audit log, behind a login, each
operator seeing and acting only on their own units (enforced by `bus.ops`, on the server).

- `accounts`: operator accounts from a TOML file, scrypt password hashes;
- `sessions`, `guard`, `throttle`, `login`: signed session cookies, CSRF on every POST,
  login rate limiting;
- `scrape`, `flow`: the services' /metrics as rates and lag quantiles per unit over time;
- `status`: queue depths and connector heartbeats;
- `pages`, `overview`, `letters`, `auditlog`: the pages and their JSON;
- `app`: `Console`, which puts it together and runs its background work.
"""
