"""Config-file driven sessions: load a TOML session, run it, write its reports."""
from pageext_core.session.config import DEFAULT_SESSION, Session, SessionError, load_session
from pageext_core.session.runner import RunOptions, RunOutcome, run_session
from pageext_core.session.workload import WorkloadContext, WorkloadResult

__all__ = ["DEFAULT_SESSION", "RunOptions", "RunOutcome", "Session", "SessionError", "WorkloadContext",
           "WorkloadResult", "load_session", "run_session"]
