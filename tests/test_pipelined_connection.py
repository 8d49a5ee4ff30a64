"""The decision path's pipelined Redis connection: a timeout means Redis was late."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import uvloop

from service.store.resp import PipelinedConnection, encode_command

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def _block_the_loop(seconds: float) -> None:
    time.sleep(seconds)


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_reply_that_came_in_time_is_used_after_the_loop_was_busy(
    redis_url: str, loop_name: str
) -> None:
    """After a busy stretch longer than the timeout, a reply already waiting in
    the socket wins over the expired timer (the loop reads before it expires)."""

    async def main() -> list[object]:
        conn = PipelinedConnection(redis_url, connect_timeout_s=1.0)
        await conn.execute(encode_command("SET", "k", "v"), 1.0)
        reads = [
            asyncio.ensure_future(conn.execute(encode_command("GET", "k"), 0.02)) for _ in range(5)
        ]
        await asyncio.sleep(0)  # the GETs are written
        _block_the_loop(0.1)  # the process is busy; Redis answers meanwhile
        results = await asyncio.gather(*reads, return_exceptions=True)
        await conn.aclose()
        return results

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        assert runner.run(main()) == [b"v"] * 5
