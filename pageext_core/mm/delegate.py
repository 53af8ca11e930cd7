"""Forwarding a front object's names to its parts, typed, without a call layer.

``Machine`` is a thin front over its parts (the allocator, the context, the
oops state).  ``forward("buddy", BuddyAllocator.alloc_pages)`` makes
``machine.alloc_pages`` the allocator's own bound method, stored on the
instance (``bind_forwards``, from ``__init__``), so a call costs what a call
to the part costs.  All of them are bound at once, in the class's order:
every machine's ``__dict__`` then has the same keys in the same order, which
CPython's specialised attribute lookups rely on (binding at first use made
two machines in one process differ, and one of them slower).  ``forward_attr("buddy")`` reads (and, when writable, writes) a part's
attribute, for values the part may rebind: typed as a descriptor, it puts a
``property`` over ``operator.attrgetter`` in its place when the class is
made, so a read runs no Python code (page_owner reads ``current`` and
``clock_ns`` on every event).
"""
from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class forward(Generic[P, R]):
    """A method of the part ``part`` (a non-data descriptor: the bound method ``bind_forwards`` stores wins)."""

    def __init__(self, part: str, fn: Callable[Concatenate[Any, P], R]) -> None:
        self.part = part
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.name:
            raise TypeError(f"{owner.__name__}.{name} forwards {self.name}: the names must match")

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> forward[P, R]: ...

    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> Callable[P, R]: ...

    def __get__(self, obj: object | None, objtype: type | None = None) -> forward[P, R] | Callable[P, R]:
        if obj is None:
            return self
        # Reached only before ``bind_forwards`` (or without it): not stored, so the instance's layout stays put.
        bound: Callable[P, R] = getattr(getattr(obj, self.part), self.name)
        return bound


def bind_forwards(obj: object) -> None:
    """Store every ``forward`` of ``obj``'s class on ``obj`` as the part's bound method, in definition order."""
    seen: set[str] = set()
    d = obj.__dict__
    for cls in reversed(type(obj).__mro__):
        for name, value in vars(cls).items():
            if isinstance(value, forward) and name not in seen:
                seen.add(name)
                d[name] = getattr(getattr(obj, value.part), value.name)


class forward_attr(Generic[T]):
    """An attribute of the part ``part``; read-only unless ``writable``.

    Type checkers see this descriptor; at run time ``__set_name__`` replaces
    it on the class with an equivalent ``property`` whose getter is C code.
    ``__get__``/``__set__`` below say what that property does.
    """

    def __init__(self, part: str, doc: str = "", *, writable: bool = False) -> None:
        self.part = part
        self.writable = writable
        self.name = ""
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        part = self.part

        def set_value(obj: object, value: T) -> None:
            self.__set__(obj, value)

        setattr(owner, name, property(attrgetter(f"{part}.{name}"), set_value, doc=self.__doc__))

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> forward_attr[T]: ...

    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...

    def __get__(self, obj: object | None, objtype: type | None = None) -> forward_attr[T] | T:
        if obj is None:
            return self
        value: T = getattr(getattr(obj, self.part), self.name)
        return value

    def __set__(self, obj: object, value: T) -> None:
        if not self.writable:
            raise AttributeError(f"{type(obj).__name__}.{self.name} is read-only (it is {self.part}.{self.name})")
        setattr(getattr(obj, self.part), self.name, value)
