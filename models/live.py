"""The simulator driving the real service over HTTP, visit by visit.

A :class:`Simulation` holds a population of people with latent tastes (from
:func:`models.simulator.make_population`, as new visitors: the service learns
about them only from the events posted here, as on a real site). Each person
has a visitor id per device (the simulator calls as the site's server does,
with an API key, naming the visitor); some are the site's customers and log in
with a login token bound to the device, and some of those use a second device,
where logging in makes the service recognize them at once. Some people visit
often, most come back (activity drawn from a heavy-tailed distribution), and
tastes drift now and then.

A visit is a session of page views. On each page the simulator posts the view
(and a login when the visitor signs in), asks ``/v1/decide`` for the slots on
that page, posts the impressions, and draws clicks from the ground-truth
:func:`models.simulator.click_probability` times the chance the visitor looks
at the slot at all (a slot lower on the page, or a later item of a slot, is
seen less: the position effect). The truth remembers every impression, so a
variant shown again and again without a click loses its appeal (fatigue).
Clicks lead to conversions with values more often when the content was
relevant, and now and then the visitor answers the one-question survey (1-7)
with a rating that follows how relevant the content was.

The site is not the one the bundled model was trained on: each variant has an
appeal of its own (how good this site's creative is, ``appeal_sigma``), which
no model trained elsewhere can know and a model trained on the site's own log
can learn. Each person keeps a simulated clock on which visits are days apart
(the run itself takes minutes), so fatigue fades between visits as it would.

Because it knows every eligible variant's true click probability, the summary
reports the oracle's and random's expected click rate next to the live one,
by policy. Expected rates (the mean true probability of what was shown) are
what the CTR figures mean: they have far less noise than counted clicks.

Sessions run ``concurrency`` at a time (a person is never in two at once),
paced to ``rate`` decisions per second. With ``concurrency=1`` a seed
reproduces a run exactly against the same service state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from models.simulator import (
    DEFAULT_PARAMS,
    PLACEMENT_PAGES,
    REFERENCE_NOW,
    SimParams,
    Visitor,
    World,
    click_logit,
    draw_hour,
    draw_page,
    draw_referrer,
    drift_tastes,
    make_population,
    make_world,
)
from service.catalog.model import Variant
from service.features.context import Context
from service.identity.customer import sign_login

SITE_PARAMS = dataclasses.replace(DEFAULT_PARAMS, fatigue_half_life_days=2.0)
"""The click model of the simulated site: the offline simulator's, with fatigue fading
over two (simulated) days, so a person's state settles within a run."""
CONSENT = {"X-Persona-Consent": "personalization,analytics"}
QUESTION_ID = "was-this-relevant"
LOGIN_TOKEN_TTL_S = 300


@dataclass(frozen=True, slots=True)
class LiveParams:
    """How people behave on the site (the click model itself is :class:`SimParams`)."""

    activity_sigma: float = 1.2
    """Spread of the log-normal visit frequency: a few people visit very often."""
    customer_share: float = 0.35
    """People with a customer account."""
    second_device_share: float = 0.5
    """Customers who also visit from a second device."""
    login_share: float = 0.8
    """A customer's sessions in which they log in (on the first page)."""
    page_stop: float = 0.25
    """Chance of leaving after each page (sessions average four pages)."""
    drift_share: float = 0.03
    """Sessions before which the person's tastes drift."""
    drift_amount: float = 0.5
    appeal_sigma: float = 0.6
    """Spread of each variant's own appeal (log-odds): how good this site's creative is,
    which no model trained elsewhere can know."""
    days_between_visits: float = 3.0
    """Mean simulated gap between a person's visits (fatigue fades over these days)."""
    slot_attention: tuple[tuple[str, float], ...] = (
        ("home-hero", 1.0),
        ("sidebar-offer", 0.75),
        ("article-footer", 0.5),
    )
    """Chance a slot is looked at, by where it sits on its page (unknown slots: 0.75)."""
    item_attention_decay: float = 0.6
    """A slot's n-th extra item (``more``) is looked at ``decay ** n`` as often as the first."""
    conversion_base: float = 0.04
    conversion_relevance: float = 0.3
    """A click converts with chance ``base + relevance * r``, r the content's relevance 0..1."""
    feedback_share: float = 0.06
    """Decisions after which the visitor answers the one-question survey."""


LIVE_PARAMS = LiveParams()


@dataclass(slots=True)
class Person:
    """A simulated person: tastes, devices (cookie ids), an optional customer id, the truth."""

    tastes: Visitor
    devices: tuple[tuple[str, str], ...]
    """(visitor id, device kind) per device."""
    customer_id: str | None
    fatigue: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Variant -> (unclicked impressions, fading with time; when last updated)."""
    clock: float = 0.0
    """The person's own simulated time: visits are days apart, though the run takes minutes."""
    sessions: int = 0
    logged_in: set[int] = field(default_factory=set)
    """The devices (indexes into ``devices``) on which they have logged in."""
    busy: bool = False


@dataclass(frozen=True, slots=True)
class Shown:
    """One decision as the simulator saw it: the truth about every eligible variant."""

    decision_id: str
    policy: str
    variant_id: str
    truth: dict[str, float]
    """Eligible variant -> true click probability here (attention included)."""
    clicked: bool


@dataclass
class Summary:
    """What a run measured."""

    sessions: int = 0
    returning_sessions: int = 0
    second_device_sessions: int = 0
    logins: int = 0
    page_views: int = 0
    clicks: int = 0
    conversions: int = 0
    conversion_value: float = 0.0
    ratings: list[int] = field(default_factory=list)
    drifts: int = 0
    rejected: int = 0
    """Events the service refused one by one (a login without a valid signature...)."""
    shown: list[Shown] = field(default_factory=list)
    errors: int = 0

    @property
    def decisions(self) -> int:
        """Decisions made (a slot's extra items are not counted)."""
        return len(self.shown)

    def by_policy(self, policy: str | None = None) -> dict[str, Any]:
        """Expected click rates of what was shown, the oracle and random on these decisions."""
        rows = [x for x in self.shown if policy is None or x.policy == policy]
        if not rows:
            return {"decisions": 0}
        ctr = float(np.mean([x.truth[x.variant_id] for x in rows]))
        oracle = float(np.mean([max(x.truth.values()) for x in rows]))
        rand = float(np.mean([np.mean(list(x.truth.values())) for x in rows]))
        return {
            "decisions": len(rows),
            "clicks": sum(x.clicked for x in rows),
            "ctr": round(ctr, 5),
            "ctr_oracle": round(oracle, 5),
            "ctr_random": round(rand, 5),
            "share_of_oracle": round(ctr / oracle, 4) if oracle else None,
            "lift_over_random": round(ctr / rand, 4) if rand else None,
        }

    def report(self) -> dict[str, Any]:
        """Counts, and expected click rates (mean true probability) overall and per policy."""
        overall = self.by_policy()
        policies = sorted({x.policy for x in self.shown})
        return {
            "decisions": self.decisions,
            "sessions": self.sessions,
            "returning_sessions": self.returning_sessions,
            "second_device_sessions": self.second_device_sessions,
            "logins": self.logins,
            "page_views": self.page_views,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "conversion_value": round(self.conversion_value, 2),
            "feedback": len(self.ratings),
            "mean_rating": round(float(np.mean(self.ratings)), 3) if self.ratings else None,
            "drifts": self.drifts,
            "errors": self.errors,
            "rejected_events": self.rejected,
            "ctr_live": overall.get("ctr"),
            "ctr_observed": round(self.clicks / self.decisions, 5) if self.decisions else None,
            "ctr_oracle": overall.get("ctr_oracle"),
            "ctr_random": overall.get("ctr_random"),
            "by_policy": {p: self.by_policy(p) for p in policies},
        }


class Simulation:
    """A population visiting a running service; its state carries over between runs."""

    def __init__(
        self,
        url: str,
        visitors: int,
        seed: int = 1,
        *,
        api_key: str | None = None,
        site_secret: str | None = None,
        params: SimParams = SITE_PARAMS,
        live: LiveParams = LIVE_PARAMS,
        world: World | None = None,
    ) -> None:
        self.url = url
        self.seed = seed
        self.params = params
        self.live = live
        self.world = world if world is not None else make_world()
        self.site_secret = site_secret
        # the simulator speaks for many visitors, as the site's server does
        self.headers = {**CONSENT, **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
        self.rng = np.random.default_rng(seed)
        # everyone starts unknown, so no history is simulated: the draws (tastes, devices,
        # appeal) then depend on the seed alone, not on the wall clock a history would use
        fresh = dataclasses.replace(params, new_visitor_share=1.0)
        self.people = [
            self._person(i, v)
            for i, v in enumerate(
                make_population(visitors, self.rng, REFERENCE_NOW, world=self.world, params=fresh)
            )
        ]
        self.appeal = {
            v.id: float(self.rng.normal(0.0, live.appeal_sigma))
            for p in self.world.placements
            for v in p.variants
        }
        activity = self.rng.lognormal(0.0, live.activity_sigma, size=visitors)
        self._activity = np.cumsum(activity)
        self._counter = 0
        self._shown_step = -1
        self._reserved = 0
        self._next_at = 0.0

    def _person(self, index: int, tastes: Visitor) -> Person:
        tastes.profile = None  # the service learns them from our events only
        devices = [(self._device_id(index, 0), tastes.device)]
        customer = None
        if self.rng.random() < self.live.customer_share:
            customer = f"cust-{self.seed}-{index}"
            if self.rng.random() < self.live.second_device_share:
                other = next(d for d in ("desktop", "mobile") if d != tastes.device)
                devices.append((self._device_id(index, 1), other))
        return Person(tastes, tuple(devices), customer, clock=time.time())

    def _device_id(self, index: int, device: int) -> str:
        """A device's visitor id: fixed by the seed, and as strong as a server-side id must be."""
        salt = hashlib.blake2b(f"{self.seed}:{index}:{device}".encode(), digest_size=8).hexdigest()
        return f"sim{self.seed:04d}-{index:08d}-d{device}-{salt}"

    async def run(
        self, decisions: int, rate: float, concurrency: int = 4, progress: bool = False
    ) -> Summary:
        """Simulate visits until ``decisions`` decisions, paced to ``rate`` per second."""
        summary = Summary()
        self._next_at = time.monotonic()
        self._shown_step = -1
        self._reserved = 0
        connector = aiohttp.TCPConnector(limit=concurrency * 2)
        async with aiohttp.ClientSession(
            self.url, headers=self.headers, connector=connector
        ) as http:

            async def worker() -> None:
                while self._reserved < decisions:
                    person = self._pick_person()
                    person.busy = True
                    try:
                        await self._session(http, person, summary, decisions, rate)
                    finally:
                        person.busy = False
                    if progress:
                        self._progress(summary.decisions / decisions)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        if progress:
            print(file=sys.stderr)
        return summary

    def _progress(self, done: float) -> None:
        step = int(min(1.0, done) * 30)
        if step != self._shown_step:
            self._shown_step = step
            print(f"\r[{'#' * step:<30}] {min(1.0, done):4.0%}", end="", file=sys.stderr)

    def _pick_person(self) -> Person:
        while True:
            u = float(self.rng.random()) * float(self._activity[-1])
            person = self.people[int(np.searchsorted(self._activity, u, side="right"))]
            if not person.busy:
                return person

    async def _pace(self, n: int, rate: float) -> None:
        at = max(self._next_at, time.monotonic())
        self._next_at = at + n / rate
        await asyncio.sleep(max(0.0, at - time.monotonic()))

    def _event_id(self, kind: str) -> str:
        self._counter += 1
        return f"sim-{kind}-{self.seed}-{self._counter:010d}"

    async def _session(
        self,
        http: aiohttp.ClientSession,
        person: Person,
        summary: Summary,
        budget: int,
        rate: float,
    ) -> None:
        rng, live, tastes = self.rng, self.live, person.tastes
        summary.sessions += 1
        summary.returning_sessions += person.sessions > 0
        person.clock += (
            float(rng.exponential(live.days_between_visits * 86400.0)) if person.sessions else 0.0
        )
        person.sessions += 1
        if person.sessions > 1 and rng.random() < live.drift_share:
            drift_tastes(tastes, self.world, rng, live.drift_amount, self.params)
            summary.drifts += 1
        device = int(rng.integers(len(person.devices)))
        summary.second_device_sessions += device > 0
        vid, kind = person.devices[device]
        # a login counts only with a login token the site's server made for this device
        login = (
            self.site_secret is not None
            and person.customer_id is not None
            and rng.random() < live.login_share
        )
        referrer = draw_referrer(rng)
        hour, dow = draw_hour(rng), int(rng.integers(7))
        first = True
        while self._reserved < budget:
            page = draw_page(tastes, self.world, rng, self.params)
            events: list[dict[str, Any]] = []
            if first and login:
                events.append(self._identify(vid, str(person.customer_id)))
                person.logged_in.add(device)
                summary.logins += 1
            view = {
                "type": "view",
                "event_id": self._event_id("view"),
                "visitor_id": vid,
                "page_type": page.page_type,
                "category": page.category,
                "tags": page.tags,
                "price_band": page.price_band,
                "referrer": referrer if first else None,
            }
            events.append({k: v for k, v in view.items() if v is not None})
            ctx = Context(kind, page.page_type, page.category, referrer, hour, dow)
            slots = [
                p
                for p in self.world.placements
                if any(t == page.page_type for t, _ in PLACEMENT_PAGES.get(p.name, ()))
            ]
            # claimed before any await: other sessions run while this one waits
            self._reserved += len(slots)
            try:
                refused = await _post(http, "/v1/events", {"events": events})
                summary.rejected += refused  # not `+= await`: it would lose concurrent counts
                summary.page_views += 1
                if slots:
                    await self._decide(http, person, vid, ctx, slots, summary, rate)
            except (TimeoutError, aiohttp.ClientError, KeyError, ValueError):
                summary.errors += 1
            first = False
            person.clock += 20.0 + float(rng.exponential(75.0))
            if rng.random() < live.page_stop:
                break

    async def _decide(
        self,
        http: aiohttp.ClientSession,
        person: Person,
        vid: str,
        ctx: Context,
        slots: list[Any],
        summary: Summary,
        rate: float,
    ) -> None:
        await self._pace(len(slots), rate)
        body = {
            "placements": [p.name for p in slots],
            "visitor_id": vid,
            "include_scores": True,
            "context": {
                "device": ctx.device,
                "page_type": ctx.page_type,
                "category": ctx.category,
                "referrer": ctx.referrer,
                "local_hour": ctx.hour,
                "day_of_week": ctx.dow,
            },
        }
        async with http.post("/v1/decide", json=body) as resp:
            answer = (await resp.json())["decisions"]
        now = person.clock
        follow: list[dict[str, Any]] = []
        attention = dict(self.live.slot_attention)
        for placement in slots:
            d = answer[placement.name]
            variants = {v.id: v for v in placement.variants}
            eligible = [s["variant_id"] for s in d.get("scores") or []] or list(variants)
            shown = [d["variant_id"], *[m["variant_id"] for m in d.get("more") or []]]
            truth = {
                v: self._truth(person, variants[v], ctx, now)
                for v in dict.fromkeys([*eligible, *shown])
            }
            look = attention.get(placement.name, 0.75)
            for position, variant_id in enumerate(shown):
                seen = look * self.live.item_attention_decay**position
                p = seen * truth.get(variant_id, 0.0)
                events, clicked = self._outcome(
                    person, vid, d, variants[variant_id], placement.name, p, truth
                )
                follow.extend(events)
                summary.clicks += clicked
                if position == 0:
                    summary.shown.append(
                        Shown(
                            decision_id=d["decision_id"],
                            policy=d["policy"],
                            variant_id=variant_id,
                            truth={v: seen * q for v, q in truth.items()},
                            clicked=clicked,
                        )
                    )
        for e in follow:
            if e["type"] == "conversion":
                summary.conversions += 1
                summary.conversion_value += e["value"]
            elif e["type"] == "feedback":
                summary.ratings.append(e["rating"])
        refused = await _post(http, "/v1/events", {"events": follow})
        summary.rejected += refused

    def _truth(self, person: Person, variant: Variant, ctx: Context, now: float) -> float:
        """The true click probability, with the person's fatigue with this variant."""
        z = click_logit(person.tastes, variant, ctx, None, now, self.params)
        z += self.appeal[variant.id]
        level = self._fatigue(person, variant.id, now, 0.0)
        z -= self.params.fatigue_per_impression * min(level, float(self.params.fatigue_cap))
        return 1.0 / (1.0 + math.exp(-z))

    def _fatigue(self, person: Person, variant_id: str, now: float, change: float) -> float:
        """Fade the unclicked-impression level to ``now``, apply ``change``, return it."""
        level, at = person.fatigue.get(variant_id, (0.0, now))
        half_life = self.params.fatigue_half_life_days * 86400.0
        level = max(0.0, float(level * 2.0 ** (-max(0.0, now - at) / half_life)) + change)
        person.fatigue[variant_id] = (level, now)
        return level

    def _outcome(
        self,
        person: Person,
        vid: str,
        d: dict[str, Any],
        variant: Variant,
        placement: str,
        p: float,
        truth: dict[str, float],
    ) -> tuple[list[dict[str, Any]], bool]:
        """The impression, and maybe a click, a conversion and a survey answer."""
        rng, now, variant_id = self.rng, person.clock, variant.id
        shown = {
            "decision_id": d["decision_id"],
            "placement": placement,
            "variant_id": variant_id,
            "visitor_id": vid,
        }
        out: list[dict[str, Any]] = [
            {"type": "impression", "event_id": self._event_id("imp"), **shown}
        ]
        self._fatigue(person, variant_id, now, +1.0)
        lo, hi = min(truth.values()), max(truth.values())
        relevance = (truth.get(variant_id, lo) - lo) / (hi - lo) if hi > lo else 0.5
        clicked = bool(rng.random() < p)
        if clicked:
            out.append({"type": "click", "event_id": self._event_id("click"), **shown})
            self._fatigue(person, variant_id, now, -1.0)
            if (
                rng.random()
                < self.live.conversion_base + self.live.conversion_relevance * relevance
            ):
                value = 25.0 * person.tastes.price_band * float(rng.lognormal(0.0, 0.5))
                out.append(
                    {
                        "type": "conversion",
                        "event_id": self._event_id("conv"),
                        "visitor_id": vid,
                        "decision_id": d["decision_id"],
                        "value": round(value, 2),
                        "currency": "USD",
                    }
                )
        if rng.random() < self.live.feedback_share:
            rating = int(np.clip(round(1.0 + 6.0 * relevance + float(rng.normal(0.0, 0.8))), 1, 7))
            out.append(
                {
                    "type": "feedback",
                    "event_id": self._event_id("fb"),
                    "visitor_id": vid,
                    "decision_id": d["decision_id"],
                    "question_id": QUESTION_ID,
                    "rating": rating,
                }
            )
        return out, clicked

    def _identify(self, vid: str, customer_id: str) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "identify",
            "event_id": self._event_id("login"),
            "visitor_id": vid,
            "customer_id": customer_id,
        }
        if self.site_secret is not None:
            # a login token bound to this device's id, as the site's server makes at login
            expires = int(time.time()) + LOGIN_TOKEN_TTL_S
            event["signature"] = sign_login(self.site_secret, customer_id, vid, expires)
        return event


async def simulate(
    url: str,
    visitors: int,
    decisions: int,
    rate: float,
    seed: int = 1,
    *,
    concurrency: int = 4,
    api_key: str | None = None,
    site_secret: str | None = None,
    progress: bool = False,
) -> Summary:
    """One run of a fresh population of ``visitors`` people (see :class:`Simulation`)."""
    sim = Simulation(url, visitors, seed, api_key=api_key, site_secret=site_secret)
    return await sim.run(decisions, rate, concurrency, progress)


async def _post(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> int:
    """Post a batch of events; the number the service rejected one by one."""
    async with http.post(path, json=body) as resp:
        if resp.status >= 400:
            raise aiohttp.ClientResponseError(
                resp.request_info, (), status=resp.status, message=await resp.text()
            )
        return int((await resp.json()).get("rejected", 0))
