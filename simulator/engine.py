"""The day-by-day simulation loop.

State is a handful of per-customer numpy arrays (time of the next order and of the next
abandoned cart, orders so far, dropout day) plus a buffer of records due on future days
(order status changes, reviews, survey answers). Each day only customers whose next event
falls on that day are touched, so the cost per day grows with the day's activity, not with
the population (besides one vectorised comparison over the signed-up customers).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pandas as pd

from simulator import emit
from simulator.badrows import inject_bad_rows
from simulator.calendar import EPOCH, date_strings, spend_season
from simulator.config import SimulatorConfig
from simulator.orders import DAY, draw_feedback, draw_orders, order_versions
from simulator.population import Population, draw_population
from simulator.text import review_text, survey_comments

HORIZON_PAD = 400  # days of calendar kept beyond the end (future due dates, ground truth)


def _exp_times(rng: np.random.Generator, t0: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """``t0`` plus an exponential waiting time with ``rate`` per day (inf where rate is 0)."""
    with np.errstate(divide="ignore"):
        return t0 + rng.standard_exponential(t0.shape[0]) / rate


class Simulation:
    """A seeded simulation; iterate :meth:`days` once, then call :func:`ground_truth`.

    :func:`simulator.truth.ground_truth` may also be called mid-way (between two days) for
    the truth as of the end of the last yielded day.

    Parameters
    ----------
    config : SimulatorConfig
        What to simulate.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        pop_seed, day_seed, bad_seed = np.random.SeedSequence(config.seed).spawn(3)
        self.pop: Population = draw_population(config, np.random.default_rng(pop_seed))
        self.rng = np.random.default_rng(day_seed)
        self.bad_rng = np.random.default_rng(bad_seed)
        self.start_sec = (config.start - EPOCH).days * DAY
        self.season = spend_season(config.start, config.n_days + HORIZON_PAD)
        self.dates = date_strings(config.start, config.n_days + HORIZON_PAD)
        pop = self.pop
        self.next_order_t = _exp_times(self.rng, pop.signup_t, pop.first_order_rate)
        self.n_orders = np.zeros(pop.size, dtype=np.int32)
        self.dropout_day = np.full(pop.size, -1, dtype=np.int32)
        self.next_cart_t = _exp_times(self.rng, pop.signup_t, self._cart_rate(np.arange(pop.size)))
        self.due: dict[str, defaultdict[int, list[dict[str, np.ndarray]]]] = {
            s: defaultdict(list) for s in ("orders", "reviews", "surveys")
        }
        self.counters = {"order": 0, "review": 0, "survey": 0, "checkout": 0}
        self.days_done = 0  # the state is as of the end of this many simulated days
        self.started = False
        self.finished = False

    # ------------------------------------------------------------------ state helpers
    def _cart_rate(self, idx: np.ndarray) -> np.ndarray:
        c, pop = self.config, self.pop
        rate = c.buyer_cart_factor * pop.lam[idx] + c.buyer_cart_base
        rate = np.where(pop.is_prospect[idx], c.prospect_cart_rate, rate)
        return np.where(self.dropout_day[idx] >= 0, c.dead_cart_rate, rate)

    def _next_ids(self, kind: str, n: int) -> np.ndarray:
        first = self.counters[kind] + 1
        self.counters[kind] += n
        return np.arange(first, first + n, dtype=np.int64)

    def _schedule(self, source: str, days: np.ndarray, cols: dict[str, np.ndarray]) -> None:
        keep = days < self.config.n_days  # changes after the end never land
        days = days[keep]
        if days.size == 0:
            return
        order = np.argsort(days, kind="stable")
        days = days[order]
        cols = {k: v[keep][order] for k, v in cols.items()}
        uniq, first = np.unique(days, return_index=True)
        bounds = np.append(first, days.size)
        for j, d in enumerate(uniq):
            sl = slice(bounds[j], bounds[j + 1])
            self.due[source][int(d)].append({k: v[sl] for k, v in cols.items()})

    # ------------------------------------------------------------------ one day
    def _place(self, day: int, idx: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Place one order for each customer in ``idx`` at time ``t``; update their state."""
        c, pop, rng = self.config, self.pop, self.rng
        sec = self.start_sec + np.clip(
            np.floor(t * DAY).astype(np.int64), day * DAY, (day + 1) * DAY - 1
        )
        o = draw_orders(rng, c, day, sec, pop.p[idx], pop.nu[idx], self.season[day], self.start_sec)
        ids = self._next_ids("order", idx.size)
        self.n_orders[idx] += 1
        drop = o["dropout"]
        self.dropout_day[idx[drop]] = day
        gap = rng.standard_exponential(idx.size) / pop.lam[idx]
        self.next_order_t[idx] = np.where(drop, np.inf, t + gap)
        dead = idx[drop]
        self.next_cart_t[dead] = _exp_times(rng, t[drop], self._cart_rate(dead))

        emit_day, v = order_versions(o, day)
        pos = v["pos"]
        static = {
            "order_id": ids,
            "cust": idx,
            "ordered_sec": sec,
            "order_total": o["order_total"],
            "discount_total": o["discount_total"],
            "shipping_total": o["shipping_total"],
            "item_count": o["item_count"],
            "is_app": o["is_app"],
            "promised_day": o["promised_day"],
        }
        cols = {k: a[pos] for k, a in static.items()}
        cols.update(
            status=v["status"], delivered_sec=v["delivered_sec"], updated_sec=v["updated_sec"]
        )
        self._schedule("orders", emit_day, cols)
        self._feedback(o, idx, ids)
        return {"cust": idx, "order_id": ids, "sec": sec, "cart_value": o["merchandise"]}

    def _feedback(self, o: dict[str, np.ndarray], idx: np.ndarray, ids: np.ndarray) -> None:
        fb = draw_feedback(self.rng, self.config, o, self.pop.p[idx])
        r = fb["reviews"]
        if r["pos"].size:
            pos = r["pos"]
            titles, bodies = review_text(self.rng, r["rating"], o["late_days"][pos])
            created = self.start_sec + r["day"] * DAY + self.rng.integers(0, DAY, size=pos.size)
            cols = {
                "review_id": self._next_ids("review", pos.size),
                "cust": idx[pos],
                "order_id": ids[pos],
                "rating": r["rating"],
                "title": np.array(titles, dtype=object),
                "body": np.array(bodies, dtype=object),
                "created_sec": created,
            }
            self._schedule("reviews", r["day"], cols)
        s = fb["surveys"]
        if s["pos"].size:
            pos = s["pos"]
            responded = self.start_sec + s["day"] * DAY + self.rng.integers(0, DAY, size=pos.size)
            cols = {
                "response_id": self._next_ids("survey", pos.size),
                "cust": idx[pos],
                "score": s["score"],
                "comment": np.array(survey_comments(self.rng, s["score"]), dtype=object),
                "responded_sec": responded,
            }
            self._schedule("surveys", s["day"], cols)

    def _orders_today(self, day: int, hi: int) -> list[dict[str, np.ndarray]]:
        end = day + 1.0
        idx = np.flatnonzero(self.next_order_t[:hi] < end)
        placed = []
        while idx.size:  # a customer may order more than once a day
            placed.append(self._place(day, idx, self.next_order_t[idx]))
            idx = idx[self.next_order_t[idx] < end]
        return placed

    def _abandoned_today(self, day: int, hi: int) -> list[dict[str, np.ndarray]]:
        end, pop, rng = day + 1.0, self.pop, self.rng
        idx = np.flatnonzero(self.next_cart_t[:hi] < end)
        carts = []
        while idx.size:
            t = self.next_cart_t[idx]
            sec = self.start_sec + np.clip(
                np.floor(t * DAY).astype(np.int64), day * DAY, (day + 1) * DAY - 1
            )
            mean = self.config.spend_shape / pop.nu[idx] * self.season[day]
            value = np.round(rng.gamma(2.0, mean / 2.0), 2)
            carts.append(
                {
                    "cust": idx,
                    "order_id": np.zeros(idx.size, np.int64),
                    "sec": sec,
                    "cart_value": value,
                }
            )
            self.next_cart_t[idx] = _exp_times(rng, t, self._cart_rate(idx))
            idx = idx[self.next_cart_t[idx] < end]
        return carts

    def _completed_carts(
        self, day: int, placed: list[dict[str, np.ndarray]]
    ) -> list[dict[str, np.ndarray]]:
        out = []
        for b in placed:
            lead = self.rng.integers(60, 1800, size=b["sec"].size)
            started = np.maximum(self.start_sec + day * DAY, b["sec"] - lead)
            out.append({**b, "sec": started})
        return out

    def days(self) -> Iterator[tuple[dt.date, dict[str, pd.DataFrame]]]:
        """Yield ``(date, {source: DataFrame})`` for every day, in landing-contract columns."""
        if self.started:
            raise RuntimeError("a Simulation can be iterated only once")
        self.started = True
        c, bounds = self.config, self.pop.signup_bounds
        for day in range(c.n_days):
            lo, hi = int(bounds[day]), int(bounds[day + 1])
            placed = self._orders_today(day, hi)
            carts = self._completed_carts(day, placed) + self._abandoned_today(day, hi)
            frames = {
                "customers": emit.customers_frame(self, lo, hi),
                "orders": emit.orders_frame(self, self.due["orders"].pop(day, [])),
                "reviews": emit.reviews_frame(self, self.due["reviews"].pop(day, [])),
                "surveys": emit.surveys_frame(self, self.due["surveys"].pop(day, [])),
                "checkouts": emit.checkouts_frame(self, carts),
            }
            frames = {s: f for s, f in frames.items() if s in c.sources}
            if c.bad_row_rate > 0:
                frames = inject_bad_rows(frames, self.bad_rng, c.bad_row_rate)
            self.days_done = day + 1
            yield c.start + dt.timedelta(days=day), frames
        self.finished = True


def simulate(config: SimulatorConfig) -> Iterator[tuple[dt.date, dict[str, pd.DataFrame]]]:
    """Iterate ``(date, {source: DataFrame})`` over the simulated days of ``config``."""
    return Simulation(config).days()
