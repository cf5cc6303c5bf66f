"""Calendar effects: Black Friday, the December peak, weekly rhythm and growth trend."""

from __future__ import annotations

import datetime as dt

import numpy as np

EPOCH = dt.date(1970, 1, 1)


def black_friday(year: int) -> dt.date:
    """The day after the fourth Thursday of November of ``year``."""
    first = dt.date(year, 11, 1)
    first_thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + dt.timedelta(days=22)


def day_dates(start: dt.date, n_days: int) -> np.ndarray:
    """``datetime64[D]`` array of ``n_days`` consecutive dates from ``start``."""
    return np.datetime64(start.isoformat(), "D") + np.arange(n_days)


def date_strings(start: dt.date, n_days: int) -> np.ndarray:
    """``YYYY-MM-DD`` strings (object array) for ``n_days`` consecutive dates from ``start``."""
    return np.datetime_as_string(day_dates(start, n_days), unit="D").astype(object)


def peak_factor(start: dt.date, n_days: int, bf_boost: float, december_boost: float) -> np.ndarray:
    """Multiplicative seasonal factor per day: >1 in Black Friday week and before Christmas.

    Parameters
    ----------
    start : datetime.date
        First day.
    n_days : int
        Number of days.
    bf_boost : float
        Extra factor from the Thursday before Black Friday to Cyber Monday.
    december_boost : float
        Extra factor from 1 to 23 December.

    Returns
    -------
    numpy.ndarray
        Factor per day, shape ``(n_days,)``.
    """
    dates = day_dates(start, n_days)
    years = dates.astype("datetime64[Y]").astype(int) + 1970
    month_day = dates - dates.astype("datetime64[M]")
    months = dates.astype("datetime64[M]").astype(int) % 12 + 1
    factor = np.ones(n_days)
    december = (months == 12) & (month_day.astype(int) < 23)
    factor[december] += december_boost
    for year in np.unique(years):
        bf = np.datetime64(black_friday(int(year)).isoformat(), "D")
        week = (dates >= bf - 1) & (dates <= bf + 3)
        factor[week] += bf_boost
    return factor


def spend_season(start: dt.date, n_days: int) -> np.ndarray:
    """Seasonal multiplier of order values (Black Friday +30 %, December +15 %)."""
    return peak_factor(start, n_days, bf_boost=0.30, december_boost=0.15)


def signup_weights(
    start: dt.date, n_days: int, annual_growth: float, weekly: tuple[float, ...]
) -> np.ndarray:
    """Relative sign-up intensity per day: growth trend x weekly x yearly seasonality.

    The yearly part is a smooth cosine peaking in early December plus the Black Friday and
    December bumps; it is normalised to sum to 1.
    """
    dates = day_dates(start, n_days)
    t_years = np.arange(n_days) / 365.25
    trend = (1.0 + annual_growth) ** t_years
    weekday = (dates.astype(int) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    weekly_f = np.asarray(weekly)[weekday]
    doy = (dates - dates.astype("datetime64[Y]")).astype(int)
    yearly = 1.0 + 0.12 * np.cos(2.0 * np.pi * (doy - 340) / 365.25)
    yearly *= peak_factor(start, n_days, bf_boost=0.8, december_boost=0.1)
    w = trend * weekly_f * yearly
    return w / w.sum()
