"""The staff page of the reference terminal (FastAPI, served by uvicorn on its own thread).

:func:`create_app` builds the page over a :class:`~terminal.app.ReferenceTerminal`; :class:`StaffServer`
serves it; :class:`StaffAccounts` holds the staff's scrypt hashes. docs/notes/staff-page.md says
what it shows and how it is protected.
"""

from terminal.staff.accounts import StaffAccounts, StaffConfigError, hash_password
from terminal.staff.server import StaffServer, StaffServerError
from terminal.staff.web import allowed_hosts_for, create_app

__all__ = ["StaffAccounts", "StaffConfigError", "StaffServer", "StaffServerError", "allowed_hosts_for",
           "create_app", "hash_password", "serve"]


def serve(terminal, accounts: StaffAccounts, host: str = "127.0.0.1", port: int = 0, report=None) -> StaffServer:
    """Build and start the staff page for ``terminal`` (raises :class:`StaffServerError`)."""
    server = StaffServer(create_app(terminal, accounts, allowed_hosts=allowed_hosts_for(host)), host, port, report)
    server.start()
    return server
