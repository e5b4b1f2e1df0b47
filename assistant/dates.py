"""Dates as associates say them (EN/ES): sales periods and schedule days from a DATE span."""

from __future__ import annotations

import datetime as dt

from textnorm import fold

WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}
_WEEKDAY_KEYS = {fold(name): i for names in WEEKDAYS.values() for i, name in enumerate(names)}
PERIODS = {
    "today": ("today", "hoy", "so far today"),
    "yesterday": ("yesterday", "ayer"),
    "last_week": ("last week", "past week", "la semana pasada", "semana pasada"),
    "this_month": ("this month", "este mes", "el mes", "past month", "last month", "el mes pasado"),
    "this_week": ("this week", "esta semana", "la semana"),
}
PERIOD_NAMES = {
    "today": ("today", "hoy"),
    "yesterday": ("yesterday", "ayer"),
    "this_week": ("in the last 7 days", "en los últimos 7 días"),
    "last_week": ("last week", "la semana pasada"),
    "this_month": ("in the last 28 days", "en los últimos 28 días"),
}


def period_of(phrase: str) -> str:
    """A sales period key of PERIODS from a DATE span ("la semana pasada" -> "last_week");
    "this_week" when the phrase names none."""
    key = fold(phrase)
    for period, phrases in PERIODS.items():
        if any(fold(p) in key for p in phrases):
            return period
    return "this_week"


def day_of(phrase: str, today: dt.date) -> dt.date:
    """The day a DATE span names, counted from `today` ("mañana", "friday": the next one,
    today when it is Friday); `today` when the phrase names none."""
    key = fold(phrase)
    if "pasado manana" in key or "day after tomorrow" in key:
        return today + dt.timedelta(days=2)
    if "tomorrow" in key or key in ("manana",):
        return today + dt.timedelta(days=1)
    if "yesterday" in key or "ayer" in key:
        return today - dt.timedelta(days=1)
    for word in key.split():
        if word in _WEEKDAY_KEYS:
            ahead = (_WEEKDAY_KEYS[word] - today.weekday()) % 7
            return today + dt.timedelta(days=ahead)
    return today
