"""Synthetic e-commerce landing zone with known ground truth (the demo data source).

Generative story (all vectorised numpy, one random stream per seed):

* Customers sign up over the period with a growth trend, a weekly rhythm and a yearly
  season (Black Friday, December); each gets an acquisition channel, a country and a fake
  e-mail. About 22 % are prospects who never order (they may abandon carts).
* Buyers place a first order soon after sign-up (45 % within the hour, the rest after ~2 weeks
  on average), then order as a Poisson process with rate ``lambda ~ Gamma`` (mean one order per
  75 days) and drop out after each order with probability ``p ~ Beta(1.2, 4.8)``; the channel
  scales both. A late delivery (~10 %) doubles ``p`` for that order and lowers the rating and
  NPS score. Order values are Gamma-Gamma (per-customer mean ~ 65 EUR) times a seasonal factor.
* Each order lands CDC-style: ``placed`` on its day, then ``shipped`` (1-2 days) or
  ``cancelled`` (~3 %), ``delivered`` (``delivered_at`` set), maybe ``returned`` (~5 %), each
  version a full row with its own ``updated_at`` in the file of the day it happened.
* Reviews (~18 % of delivered orders, 35 % when late), post-purchase NPS answers (~20 %),
  checkouts (one completed per order, plus abandoned carts of buyers, lapsed customers and
  prospects).

Output: ``<out>/<source>/<YYYY-MM-DD>.<csv|parquet|jsonl>`` per the landing contract, one file
per source for every simulated day (header-only / empty when nothing happened that day), and
``ground_truth/customers.parquet`` + ``summary.json`` beside (never inside) the landing zone;
see :mod:`simulator.writer` and :mod:`simulator.truth`. Same config and seed -> same bytes.

Library use::

    from simulator import SimulatorConfig, Simulation, ground_truth, simulate, run

    for day, frames in simulate(SimulatorConfig(customers=500)):
        ...  # frames: {"orders": DataFrame, ...} in contract columns, values as landed

    sim = Simulation(SimulatorConfig(customers=500))
    for day, frames in sim.days():
        ...
    truth = ground_truth(sim)  # also valid mid-way, as of the last yielded day

    summary = run(SimulatorConfig(customers=500), "data/landing")  # + data/ground_truth/

Command line: ``python -m simulator --customers N --start D --end D --seed S --out DIR``
(``--help`` for the rest).
"""

from simulator.config import SimulatorConfig
from simulator.engine import Simulation, simulate
from simulator.truth import ground_truth
from simulator.writer import default_truth_dir, run, write_frame

__all__ = [
    "Simulation",
    "SimulatorConfig",
    "default_truth_dir",
    "ground_truth",
    "run",
    "simulate",
    "write_frame",
]
