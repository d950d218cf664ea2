"""``crm bench``: the figures of docs/architecture.md ("Figures"), measured in one run.

- ``workload``: what is written per command and how much (default and quick sizes)
- ``store_figures``: our event store's append, replay and verify rates
- ``peer_figures``: the ``eventsourcing`` library doing the same appends
- ``rpc_figures``: register beside a no-op RPC, and register → visible latency
- ``noop_service``: the no-op nameko service those RPC figures compare with
- ``scratch``: the throwaway database and RabbitMQ vhost the bench runs on
- ``report``: the JSON object and the table
- ``runner`` / ``command``: the run as a whole, and the typer command

The CLI mounts ``shared.bench.command.bench`` with ``app.command("bench")(bench)``.
Nothing is imported here, so ``nameko run shared.bench.noop_service:...``
loads only what the no-op service needs.
"""
