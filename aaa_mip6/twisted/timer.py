"""The one timer a shell keeps for its sans-I/O core: due at the core's ``timer()``."""

from __future__ import annotations

from collections.abc import Callable


def rearm(reactor, call, deadline: float | None, fire: Callable[[], None]):
    """Cancel ``call`` (an IDelayedCall or None) and return the call that runs ``fire`` at
    ``deadline`` (reactor seconds; one already past runs at once), None without one."""
    if call is not None and call.active():
        call.cancel()
    if deadline is None:
        return None
    return reactor.callLater(max(0.0, deadline - reactor.seconds()), fire)
