"""Configuration from environment variables, with working defaults.

Every variable is documented in the README ("Configuration"). Relative paths are
resolved against the project root so the CLI, the UI's code server and tests agree.
Pure module: no dagster import.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def resolve_path(var: str, default: str) -> Path:
    """A path from env ``var`` (else ``default``); relative paths against the project root."""
    p = Path(os.environ.get(var) or default).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()


def _int(var: str, default: int) -> int:
    raw = os.environ.get(var)
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise ValueError(f"{var} must be an integer, got {raw!r}") from exc


def _days(var: str, default: int) -> int:
    """A number of days >= 0 from env ``var`` (``0`` means "no limit" for the callers)."""
    value = _int(var, default)
    if value < 0:
        raise ValueError(f"{var} must be an integer >= 0 (0: no limit), got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    warehouse: Path
    start_date: dt.date | None
    timezone: str
    schedule_time: dt.time
    churn_horizon_days: int
    model_dir: Path
    retrain_every_days: int = 7
    max_train_customers: int = 50_000
    # Score history (ml.churn_scores, ml.clv_predictions): every as-of date of the last
    # score_history_days days, then the first of each month (0: keep everything); the
    # published copy holds the newest published_score_days as-of dates (0: all retained).
    score_history_days: int = 120
    published_score_days: int = 7

    @property
    def partitions_start(self) -> dt.date:
        """First daily partition: LIFECYCLE_START_DATE, else the landing zone's first
        orders file, else two years before today."""
        if self.start_date:
            return self.start_date
        days = landing_days(self.landing_dir, "orders")
        return days[0] if days else dt.date.today() - dt.timedelta(days=730)


def _time(var: str, default: str) -> dt.time:
    raw = os.environ.get(var) or default
    try:
        return dt.time.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"{var} must be HH:MM, got {raw!r}") from exc


def landing_days(landing_dir: Path, source: str) -> list[dt.date]:
    """Sorted dates of the files present for ``source`` (``<landing>/<source>/<date>.<ext>``)."""
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    days = set()
    for f in folder.iterdir():
        try:
            days.add(dt.date.fromisoformat(f.name.split(".", 1)[0]))
        except ValueError:
            continue
    return sorted(days)


def load_settings() -> Settings:
    start = os.environ.get("LIFECYCLE_START_DATE")
    try:
        start_date = dt.date.fromisoformat(start) if start else None
    except ValueError as exc:
        raise ValueError(f"LIFECYCLE_START_DATE must be YYYY-MM-DD, got {start!r}") from exc
    return Settings(
        landing_dir=resolve_path("LIFECYCLE_LANDING_DIR", "data/landing"),
        warehouse=resolve_path("LIFECYCLE_WAREHOUSE", "data/warehouse/lifecycle.duckdb"),
        start_date=start_date,
        timezone=os.environ.get("LIFECYCLE_TIMEZONE") or "UTC",
        schedule_time=_time("LIFECYCLE_SCHEDULE_TIME", "02:00"),
        churn_horizon_days=_int("LIFECYCLE_CHURN_HORIZON_DAYS", 90),
        model_dir=resolve_path("LIFECYCLE_MODEL_DIR", "data/models"),
        retrain_every_days=_int("LIFECYCLE_RETRAIN_EVERY_DAYS", 7),
        max_train_customers=_int("LIFECYCLE_MAX_TRAIN_CUSTOMERS", 50_000),
        score_history_days=_days("LIFECYCLE_SCORE_HISTORY_DAYS", 120),
        published_score_days=_days("LIFECYCLE_PUBLISHED_SCORE_DAYS", 7),
    )
