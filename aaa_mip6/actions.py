"""The common base of the actions every sans-I/O core returns.

A core answers each input with a list of actions and its shell carries them out in
order, deciding nothing. Each program keeps the actions of its cores in one module,
``ha/actions.py``, ``hac/actions.py``, ``mn/actions.py``; the Diameter peer's
events are in :mod:`aaa_mip6.diameter.peer` (docs/architecture.md, "Conventions").
"""

import abc


class Action(abc.ABC):
    """What a core asks its shell to do (send, write, look up) or to know (a binding
    registered, a session failed).

    Dataclass actions subclass it. The HA's per-packet actions are NamedTuples (a
    fifth of a frozen dataclass's cost), which cannot have a base class: they are
    registered with ``@Action.register``, so ``isinstance(action, Action)`` holds for
    them too.
    """

    __slots__ = ()
