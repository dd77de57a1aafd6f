"""Schedules that fire exactly once per tick: cron with time zones (Debian cron's DST rules), missed-run
policies, and a store-backed scheduler that turns each tick into one run across crashes and nodes."""

from beamish.schedule._cron import MISFIRE_POLICIES, Misfire, Schedule

__all__ = ["MISFIRE_POLICIES", "Misfire", "Schedule"]
