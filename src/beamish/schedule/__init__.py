"""Schedules that fire exactly once per tick: cron with time zones (Debian cron's DST rules), missed-run
policies, and a store-backed scheduler that turns each tick into one run across crashes and nodes."""

from beamish.schedule._actor import SchedulerActor
from beamish.schedule._claim import run_id_for
from beamish.schedule._cron import MISFIRE_POLICIES, Misfire, Schedule
from beamish.schedule._history import FireRecord, SuccessRate
from beamish.schedule._misfire import Decision, decide
from beamish.schedule._scheduler import PassReport, Scheduler, Submit

__all__ = [
    "MISFIRE_POLICIES",
    "Decision",
    "FireRecord",
    "Misfire",
    "PassReport",
    "Schedule",
    "Scheduler",
    "SchedulerActor",
    "Submit",
    "SuccessRate",
    "decide",
    "run_id_for",
]
