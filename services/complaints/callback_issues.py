"""Issues found during a callback (回访) become complaints: the reaction to ``CallbackIssueRaised``.

The callbacks service seals the issue text under its own key for the
customer, so the reaction asks it for the text (``issue_text``,
with the complaints service's own token; the read is recorded there) and
files a complaint through the one command path, linked to the callback by
``callback_id``. The complaint's id (``contracts.callbacks.linked_complaint_id``)
and its command id derive from the event, so a redelivered event, a retry
after a crash, or a rebuild of the complaints projections (which never runs
a reaction) files nothing more. A customer erased meanwhile gets no
complaint: there is no text left to file.
"""

from __future__ import annotations

from contracts.callbacks import linked_complaint_id
from services.complaints import domain
from services.complaints.aggregate import COMPLAINT, filed_answer
from services.complaints.known_customers import customer_status
from services.complaints.rules import CONFIG_KEY, load_rules
from shared.auth import Principal
from shared.clock import container_now
from shared.commands import ReactionCommands, reaction_command_id
from shared.consumers import Reaction, acts_on
from shared.eventstore.envelope import Envelope

SERVICE_PRINCIPAL = Principal("complaints", "service")
SUMMARY_PREFIX = "回访发现的问题 / issue found during a callback: "
SUMMARY_MAX = 200


class FileComplaintForCallbackIssue(Reaction):
    name = "complaints.callback-issues"

    _rules: domain.Rules | None = None

    @acts_on("callbacks", "CallbackIssueRaised")
    def file_linked_complaint(self, envelope: Envelope) -> None:
        data = envelope.data
        status = customer_status(self.log.store.engine, data["customer_id"])
        if status == "erased":
            return
        if status is None:  # the customers' events have not reached us yet: the retry finds them
            raise LookupError(f"customer {data['customer_id']} is not known to the complaints service yet")
        issue = self.log.fetch_upstream.client.call("callbacks", "issue_text", data["callback_id"],
                                                   envelope.event_id)
        if issue["issue"] is None:  # erased since: nothing left to file
            return
        first_line = issue["issue"].strip().splitlines()[0] if issue["issue"].strip() else issue["issue"]
        command = {"customer_id": data["customer_id"], "channel": "phone", "category": data["category"],
                   "summary": (SUMMARY_PREFIX + first_line)[:SUMMARY_MAX], "description": issue["issue"],
                   "urgency": "medium", "related_complaint_id": None, "callback_id": data["callback_id"],
                   "command_id": reaction_command_id(self.name, envelope)}
        now, rules = container_now(self.log.container), self._sla_rules()
        ReactionCommands(COMPLAINT, self.log, SERVICE_PRINCIPAL, "file", envelope).create(
            linked_complaint_id(envelope.event_id), command,
            lambda complaint: domain.decide_file(complaint.complaint_id, command, now, rules), filed_answer)

    def _sla_rules(self) -> domain.Rules:
        if self._rules is None:
            self._rules = load_rules(self.log.container.config.get(CONFIG_KEY))
        return self._rules
