"""What every service has: RPC methods for its log, health and checks, and its upstream subscriptions.

A service class inherits ``LogEndpoints`` and names its dependencies
``auth`` (Authorization) and ``log`` (EventLog). The subscriptions follow
from the upstreams its consumers declare: one ``@event_handler(upstream,
"#")`` per other service, all on ``on_upstream_event``, so one queue per
upstream keeps that upstream's events in order.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from shared.rpc import rpc

from shared.auth import ROLES, allow
from shared.broker import upstream_event_handler
from shared.errors import NotFound
from shared.metrics import Metrics
from shared.validation import load_call


MAX_POSITION = 2**63 - 1  # BIGINT: a larger number would fail in the database, not here
MAX_DEAD_LETTER_ID = 2**31 - 1  # INTEGER


class _EventsSince(Schema):
    after_position = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=MAX_POSITION))
    limit = fields.Integer(load_default=500, strict=True, validate=validate.Range(min=1, max=5000))


class _VerifyLog(Schema):
    from_position = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=MAX_POSITION))
    every_signature = fields.Boolean(load_default=False, truthy={True}, falsy={False})


class _DeadLetter(Schema):
    dead_letter_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_DEAD_LETTER_ID))


class LogEndpoints:
    metrics = Metrics()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        upstreams = sorted(cls.log.followed_services() - {cls.name})
        if not upstreams:
            return

        def on_upstream_event(self, envelope):
            """An event of a service this one follows: apply it to the consumers that follow it."""
            self.log.project(envelope)

        for upstream in upstreams:
            on_upstream_event = upstream_event_handler(upstream, "#")(on_upstream_event)
        cls.on_upstream_event = on_upstream_event

    @rpc
    @allow("service", "auditor", "admin")
    def events_since(self, *args, **kwargs):
        """Envelopes after a position, oldest first, as recorded (signed): how consumers fill gaps."""
        query = load_call(_EventsSince(), args, kwargs)
        return [envelope.as_record() for envelope
                in self.log.store.read_since(query["after_position"], query["limit"], upcast=False)]

    @rpc
    @allow("service", "auditor", "admin")
    def log_head(self):
        """The last position and when it was recorded: how followers measure their lag."""
        position, recorded_at = self.log.store.head()
        return {"position": position, "recorded_at": recorded_at}

    @rpc
    @allow(*ROLES)
    def health(self):
        return self.log.provider.health()

    @rpc
    @allow("auditor", "admin")
    def verify_log(self, *args, **kwargs):
        """Recompute the hash chain and check signatures (sampled, or ``every_signature``): the first bad position."""
        query = load_call(_VerifyLog(), args, kwargs)
        return self.log.store.verify(query["from_position"], every_signature=query["every_signature"]).to_dict()

    @rpc
    @allow("admin")
    def rebuild_projections(self):
        """Rebuild every projection from its logs (own and upstream) and compare it with the live one."""
        provider = self.log.provider
        provider.catch_up()
        return [runner.rebuild(provider.log_of) for runner in provider.runners if runner.consumer.rebuildable]

    @rpc
    @allow("admin", "supervisor")
    def dead_letters(self):
        return self.log.provider.dead_letters.list()

    @rpc
    @allow("admin")
    def retry_dead_letter(self, *args, **kwargs):
        dead_letter_id = load_call(_DeadLetter(), args, kwargs)["dead_letter_id"]
        provider = self.log.provider
        consumer = provider.dead_letters.get(dead_letter_id)["consumer"]
        runner = next((r for r in provider.runners if r.consumer.name == consumer), None)
        if runner is None:
            raise NotFound(f"dead letter {dead_letter_id} belongs to {consumer}, which this service does not run")
        outcome = provider.dead_letters.retry(dead_letter_id, consumer, runner.apply_untracked)
        return {"id": dead_letter_id, "outcome": outcome}
