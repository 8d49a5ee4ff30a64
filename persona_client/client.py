"""``PersonaClient``: the sync client, for Django, Flask and other threaded servers."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from persona_client.decisions import DecideCall, Decisions
from persona_client.delivery import (
    EventResult,
    EventVerdict,
    Retry,
    batches,
    events_request,
    prepare_events,
    read_batch,
)
from persona_client.pool import ConnectionPool
from persona_client.wire import Content, make_config


class PersonaClient:
    """A client of the Persona service for a site's server; one per process, thread-safe.

    ``endpoint`` is the service's base URL (e.g. ``http://persona:8080``, or
    ``https://shop.example/persona`` behind the site's proxy) and ``api_key``
    one of its ``PERSONA_API_KEYS``. ``decide`` waits at most ``timeout_s``
    and then serves the defaults: those given per call, else ``defaults``
    here (slot -> content). ``send_events`` waits ``events_timeout_s`` per
    attempt, tries a batch at most ``events_max_attempts`` times, and stops
    retrying once waiting would pass ``events_max_wait_s``.

    Calls reuse keep-alive connections; ``close()`` (or leaving a ``with``
    block) closes them.
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        *,
        timeout_s: float = 0.25,
        defaults: Mapping[str, Content] | None = None,
        events_timeout_s: float = 2.0,
        events_max_attempts: int = 4,
        events_max_wait_s: float = 10.0,
    ) -> None:
        self._config = make_config(
            endpoint,
            api_key,
            timeout_s=timeout_s,
            defaults=defaults,
            events_timeout_s=events_timeout_s,
            events_max_attempts=events_max_attempts,
            events_max_wait_s=events_max_wait_s,
        )
        self._pool = ConnectionPool(self._config)

    def decide(
        self,
        placements: Sequence[str] | Mapping[str, Content],
        *,
        visitor_id: str | None = None,
        customer_id: str | None = None,
        consent: str | None = None,
        context: Mapping[str, object] | None = None,
        defaults: Mapping[str, Content] | None = None,
        user_agent: str | None = None,
    ) -> Decisions:
        """What to show in each of ``placements`` for this visitor; never fails for the service.

        ``placements``: slot names, or a mapping slot -> default content.
        Name the person by ``visitor_id`` (22-64 characters of ``A-Z a-z 0-9
        _ -``, e.g. a UUID's hex) or ``customer_id``, or neither to have the
        service mint a visitor id (``Decisions.visitor_id``). ``consent`` is
        the visitor's ``X-Persona-Consent`` (``"personalization,analytics"``,
        ``"all"`` or ``"none"``); ``None`` sends no header and the service
        applies its default (normally: no personalization). ``"none"``
        withdraws the visitor's consent and deletes their profile.
        ``context``: the page (see ``Context``); ``user_agent``: the browser's
        User-Agent, from which the service tells the device.

        When the service does not answer in time, cannot be reached or answers
        badly, each slot gets its default with ``fallback`` saying why.
        Raises ``ValueError`` only for arguments no call could succeed with
        (both ``visitor_id`` and ``customer_id``, no placements, a malformed
        ``consent``).
        """
        call = DecideCall.prepare(
            self._config,
            placements,
            visitor_id=visitor_id,
            customer_id=customer_id,
            consent=consent,
            context=context,
            defaults=defaults,
            user_agent=user_agent,
        )
        return call.read(self._pool.send(call.request, self._config.timeout_s))

    def send_events(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        visitor_id: str | None = None,
        consent: str | None = None,
    ) -> EventResult:
        """Send ``events`` (see ``persona_client.events`` for builders) and count the verdicts.

        Each event without an ``event_id`` gets one, and ``visitor_id`` is set
        on those that name no visitor. Events go in batches of 100; a batch
        the service could not store (503), refused for now (429) or did not
        answer is sent again with the same ids. Never fails for the service:
        events it did not take are ``unsent`` in the result, ready to resend.
        This blocks the calling thread for up to about ``events_max_wait_s``
        per batch while the service is unavailable.
        """
        prepared = prepare_events(events, visitor_id)
        verdicts: list[EventVerdict] = []
        for offset, batch in batches(prepared):
            request = events_request(self._config, batch, consent)
            retry = Retry(self._config)
            while True:
                outcome = self._pool.send(request, self._config.events_timeout_s)
                wait = retry.wait_after(outcome)
                if wait is None:
                    break
                time.sleep(wait)
            verdicts.extend(read_batch(batch, offset, outcome))
        return EventResult.of(prepared, verdicts)

    def close(self) -> None:
        """Close the client's connections; it cannot be used afterwards."""
        self._pool.close()

    def __enter__(self) -> PersonaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
