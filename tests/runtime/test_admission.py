"""The memory budget and the request limiter of ``edgepipe serve`` (runtime/admission.py), driven step by step on
an event loop: no sockets, no sleeps, no timing."""
from __future__ import annotations

import asyncio

import pytest

from edgepipe.runtime.admission import BudgetExceeded, MemoryBudget, RequestLimiter


def run(coro):
    return asyncio.run(coro)


def test_reservations_fit_until_the_budget_is_spent_then_refuse_without_waiting():
    async def scenario():
        budget = MemoryBudget(100)
        assert await budget.acquire(60, wait_s=0) == 60
        assert await budget.acquire(40, wait_s=0) == 40
        with pytest.raises(BudgetExceeded):
            await budget.acquire(1, wait_s=0)
        budget.release(40)
        assert await budget.acquire(30, wait_s=0) == 30 and budget.used == 90

    run(scenario())


def test_a_waiting_request_is_admitted_when_memory_is_released_first_come_first_served():
    async def scenario():
        budget = MemoryBudget(100)
        await budget.acquire(90, wait_s=0)
        big = asyncio.ensure_future(budget.acquire(80, wait_s=60))
        await asyncio.sleep(0)  # big is queued
        small = asyncio.ensure_future(budget.acquire(10, wait_s=60))
        await asyncio.sleep(0)
        assert not big.done() and not small.done()  # small would fit, but waits behind big (no starvation)
        budget.release(90)
        assert budget.used == 90 and not budget._waiters  # both granted at once, in arrival order
        assert await big == 80 and await small == 10
        budget.release(80)
        budget.release(10)
        assert budget.used == 0

    run(scenario())


def test_a_wait_that_runs_out_refuses_and_leaves_no_reservation_behind():
    async def scenario():
        budget = MemoryBudget(100)
        held = await budget.acquire(100, wait_s=0)
        with pytest.raises(BudgetExceeded):
            await budget.acquire(50, wait_s=0.01)
        assert budget.used == 100 and not budget._waiters
        budget.release(held)
        assert budget.used == 0 and await budget.acquire(100, wait_s=0) == 100

    run(scenario())


def test_a_cancelled_waiter_gives_its_place_back():
    async def scenario():
        budget = MemoryBudget(100)
        held = await budget.acquire(100, wait_s=0)
        waiter = asyncio.ensure_future(budget.acquire(50, wait_s=60))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        budget.release(held)
        assert budget.used == 0 and not budget._waiters

    run(scenario())


def test_oversized_reservations_are_clamped_and_shrink_returns_the_excess():
    async def scenario():
        budget = MemoryBudget(100)
        held = await budget.acquire(10**9, wait_s=0)  # alone, even a huge body is admitted
        assert held == 100
        held = budget.shrink(held, 30)  # the body turned out smaller than reserved for
        assert held == 30 and budget.used == 30
        assert budget.shrink(held, 80) == 30  # never grows
        with pytest.raises(ValueError):
            MemoryBudget(0)

    run(scenario())


def test_the_limiter_refuses_beyond_its_limit_but_never_the_health_check():
    async def scenario():
        gate, entered = asyncio.Event(), []

        async def app(scope, receive, send):
            entered.append(scope["path"])
            if scope["path"] == "/predict":
                await gate.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        limiter = RequestLimiter(app, limit=2)

        async def call(path):
            sent = []

            async def send(message):
                sent.append(message)
            await limiter({"type": "http", "path": path}, None, send)
            return sent[0]["status"], dict(sent[0]["headers"])

        held = [asyncio.ensure_future(call("/predict")) for _ in range(2)]
        await asyncio.sleep(0)
        assert limiter.in_flight == 2
        status, headers = await call("/predict")
        assert status == 503 and headers[b"retry-after"] == b"1"
        assert (await call("/healthz"))[0] == 200  # the limit is full: health still answers
        gate.set()
        assert [await h for h in held] == [(200, {}), (200, {})] and limiter.in_flight == 0

    run(scenario())
