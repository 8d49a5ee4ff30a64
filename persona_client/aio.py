"""``AsyncPersonaClient``: the asyncio client, on one aiohttp session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import aiohttp

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
from persona_client.wire import Content, Failure, Outcome, Request, Response, make_config

_MAX_CONNECTIONS = 100


class AsyncPersonaClient:
    """The asyncio twin of ``PersonaClient`` (same arguments, same results), for aiohttp,
    FastAPI, Starlette and the like: one per process and event loop.

    Its aiohttp session is made on first use, in the running loop, and keeps
    connections alive between calls; ``await aclose()`` (or leaving an
    ``async with`` block) closes it.
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
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def decide(
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
        """What to show in each of ``placements``; see ``PersonaClient.decide``."""
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
        return call.read(await self._send(call.request, self._config.timeout_s))

    async def send_events(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        visitor_id: str | None = None,
        consent: str | None = None,
    ) -> EventResult:
        """Send ``events`` and count the verdicts; see ``PersonaClient.send_events``."""
        prepared = prepare_events(events, visitor_id)
        verdicts: list[EventVerdict] = []
        for offset, batch in batches(prepared):
            request = events_request(self._config, batch, consent)
            retry = Retry(self._config)
            while True:
                outcome = await self._send(request, self._config.events_timeout_s)
                wait = retry.wait_after(outcome)
                if wait is None:
                    break
                await asyncio.sleep(wait)
            verdicts.extend(read_batch(batch, offset, outcome))
        return EventResult.of(prepared, verdicts)

    async def aclose(self) -> None:
        """Close the session; the client cannot be used afterwards."""
        self._closed = True
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> AsyncPersonaClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, request: Request, timeout_s: float) -> Outcome:
        session = self._session_for_this_loop()
        url = self._config.origin + request.path
        try:
            async with asyncio.timeout(timeout_s):
                try:
                    return await _post(session, url, request)
                except aiohttp.ServerDisconnectedError:
                    # a kept-alive connection the server closed as the request left: once more
                    return await _post(session, url, request)
        except TimeoutError:
            return Failure("client_timeout", f"no answer within {timeout_s:g} s")
        except (aiohttp.ClientConnectionError, OSError) as exc:
            return Failure("client_unavailable", str(exc) or type(exc).__name__)
        except aiohttp.ClientError as exc:
            return Failure("client_bad_answer", f"not an HTTP answer ({type(exc).__name__})")

    def _session_for_this_loop(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the Persona client is closed")
        loop = asyncio.get_running_loop()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=_MAX_CONNECTIONS),
                # the service's cookie names whoever the previous call was about: never keep it
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("an AsyncPersonaClient serves the event loop it was first used in")
        return self._session


async def _post(session: aiohttp.ClientSession, url: str, request: Request) -> Response:
    async with session.post(url, data=request.body, headers=request.headers) as resp:
        body = await resp.read()
        return Response(resp.status, body, resp.headers.get("Retry-After"))
