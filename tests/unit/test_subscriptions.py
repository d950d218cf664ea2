"""A service subscribes to the upstreams its consumers declare, one queue per upstream."""

from __future__ import annotations

from services.callbacks.service import CallbacksService
from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from shared.consumers import Projection, Reaction, handles


def subscriptions(service_cls) -> set[tuple[str, str]]:
    handler = getattr(service_cls, "on_upstream_event", None)
    if handler is None:
        return set()
    return {(entrypoint.source_service, entrypoint.event_type) for entrypoint in handler.nameko_entrypoints}


def test_complaints_follows_the_customers_and_callbacks_logs_one_queue_each():
    assert subscriptions(ComplaintsService) == {("customers", "#"), ("callbacks", "#")}


def test_callbacks_follows_the_customers_and_complaints_logs():
    assert subscriptions(CallbacksService) == {("customers", "#"), ("complaints", "#")}


def test_a_service_that_follows_only_its_own_log_subscribes_to_nothing():
    assert subscriptions(CustomersService) == set()


def test_upstreams_follow_from_what_the_handlers_name():
    class Mixed(Projection):
        name = "test.mixed"

        @handles("customers", "CustomerRegistered", "CustomerErased")
        def customer(self, connection, envelope):
            pass

        @handles("complaints", "ComplaintFiled")
        def complaint(self, connection, envelope):
            pass

    class Quiet(Reaction):
        name = "test.quiet"

    assert Mixed.upstreams == ("complaints", "customers")
    assert Mixed.handled_events() == {("customers", "CustomerRegistered"), ("customers", "CustomerErased"),
                                      ("complaints", "ComplaintFiled")}
    assert Quiet.upstreams == () and not Quiet.rebuildable and Mixed.rebuildable
