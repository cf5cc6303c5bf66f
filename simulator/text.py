"""Free text for reviews and survey comments, some of it carrying a fake person's name (PII)."""

from __future__ import annotations

import numpy as np

FIRST_NAMES = ("Anna", "Lukas", "Chloé", "Mateo", "Sofia", "Jan", "Zoë", "Luca", "Emma", "Noah")
LAST_NAMES = ("Müller", "Dubois", "de Vries", "García", "Rossi", "Peeters", "Nowak", "Berg")

TITLES = {
    "neg": ("Disappointed", "Not again", "Poor experience", "Would not recommend"),
    "mid": ("Okay", "Average", "Fine, nothing special", "Mixed feelings"),
    "pos": ("Great shop", "Very happy", "Excellent", "Will buy again", "Love it"),
}
BODIES = {
    "neg": (
        "The parcel arrived much later than promised.",
        "Quality is not what the photos suggest.",
        "Delivery was late and nobody answered my emails.",
        "Item was damaged, return process was slow.",
    ),
    "mid": (
        "Product is fine but delivery took a while.",
        "Does the job. Packaging could be better.",
        "Okay value for money.",
    ),
    "pos": (
        "Fast delivery and great quality.",
        "Exactly as described, arrived early.",
        "Good prices and friendly service.",
        "Third order here, always reliable.",
    ),
}
LATE_REMARK = " It came {days} days late."
NAME_REMARK = " Thanks to {name} from customer service."
SIGNATURE = " - {name}"

COMMENTS = {
    "detractor": (
        "Delivery was late.",
        "Too expensive for the quality.",
        "Support did not help me.",
        "",
    ),
    "passive": ("Okay overall.", "Delivery could be faster.", "", "Decent."),
    "promoter": ("Love this shop!", "Super fast delivery.", "", "Great service, thank you."),
}


def _pick(rng: np.random.Generator, options: tuple[str, ...], n: int) -> list[str]:
    idx = rng.integers(0, len(options), size=n)
    return [options[i] for i in idx]


def _names(rng: np.random.Generator, n: int) -> list[str]:
    first = rng.integers(0, len(FIRST_NAMES), size=n)
    last = rng.integers(0, len(LAST_NAMES), size=n)
    return [f"{FIRST_NAMES[a]} {LAST_NAMES[b]}" for a, b in zip(first, last, strict=True)]


def review_text(
    rng: np.random.Generator, rating: np.ndarray, late_days: np.ndarray
) -> tuple[list[str | None], list[str | None]]:
    """Title and body per review; ~8 % have no title, ~15 % mention a person's name.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    rating : numpy.ndarray
        Star rating 1-5 per review.
    late_days : numpy.ndarray
        Days the delivery was late (0 = on time).

    Returns
    -------
    tuple of list
        Titles and bodies (``None`` where missing).
    """
    n = len(rating)
    bucket = np.where(rating <= 2, "neg", np.where(rating == 3, "mid", "pos"))
    titles: list[str | None] = [None] * n
    bodies: list[str | None] = [None] * n
    no_title = rng.random(n) < 0.08
    with_name = rng.random(n) < 0.15
    signed = rng.random(n) < 0.5
    names = _names(rng, n)
    picks = {k: (_pick(rng, TITLES[k], n), _pick(rng, BODIES[k], n)) for k in TITLES}
    for i in range(n):
        t, b = picks[bucket[i]]
        body = b[i]
        if late_days[i] > 0:
            body += LATE_REMARK.format(days=int(late_days[i]))
        if with_name[i]:
            body += (SIGNATURE if signed[i] else NAME_REMARK).format(name=names[i])
        titles[i] = None if no_title[i] else t[i]
        bodies[i] = body
    return titles, bodies


def survey_comments(rng: np.random.Generator, score: np.ndarray) -> list[str | None]:
    """Optional comment per NPS answer (empty choices become ``None``); some name a person."""
    n = len(score)
    cat = np.where(score <= 6, "detractor", np.where(score <= 8, "passive", "promoter"))
    picks = {k: _pick(rng, COMMENTS[k], n) for k in COMMENTS}
    with_name = rng.random(n) < 0.05
    names = _names(rng, n)
    out: list[str | None] = []
    for i in range(n):
        text = picks[cat[i]][i]
        if text and with_name[i]:
            text += SIGNATURE.format(name=names[i])
        out.append(text or None)
    return out
