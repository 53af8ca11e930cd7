"""Config-file driven sessions: load a TOML session, run it, write its reports."""
from pageext_core.session.callsites import ALLOC_PREFIX, BUILTIN_SITES
from pageext_core.session.config import DEFAULT_SESSION, Session, SessionError, load_session
from pageext_core.session.runner import RunOptions, RunOutcome, run_session
from pageext_core.session.workload import WorkloadContext, WorkloadResult, declared_finding_kinds, match_planted

__all__ = ["ALLOC_PREFIX", "BUILTIN_SITES", "DEFAULT_SESSION", "RunOptions", "RunOutcome", "Session", "SessionError",
           "WorkloadContext", "WorkloadResult", "declared_finding_kinds", "load_session", "match_planted",
           "run_session"]
