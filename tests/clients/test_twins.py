"""The blocking SDK is the asyncio SDK written again by scripts/unasync.py: same public methods,
same signatures, a docstring on each, and the committed files are what the script writes."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orbitq.clients import AsyncBrokerClient, BrokerClient
from orbitq.clients._async_transport import AsyncTransport
from orbitq.clients._sync_transport import Transport

ROOT = Path(__file__).resolve().parent.parent.parent
TWINS = [(BrokerClient, AsyncBrokerClient), (Transport, AsyncTransport)]
# The asyncio name of each blocking protocol method.
ASYNC_DUNDERS = {"__enter__": "__aenter__", "__exit__": "__aexit__"}


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in vars(cls).items()
        if callable(member)
        and (not name.startswith("_") or name in ASYNC_DUNDERS or name in ASYNC_DUNDERS.values())
    }


def blocking(annotation: object) -> object:
    """An asyncio annotation as its blocking twin spells it: AsyncX -> X, Awaitable[X] -> X.
    (Annotations are strings here: every module has `from __future__ import annotations`.)"""
    if not isinstance(annotation, str):
        return annotation  # none written (`self`)
    annotation = re.sub(r"\bAsync(?=[A-Z])", "", annotation)
    while match := re.search(r"\bAwaitable\[(.*)\]", annotation):
        annotation = annotation[: match.start()] + match.group(1) + annotation[match.end() :]
    return annotation


def twin_pairs() -> list[tuple[str, Callable[..., Any], Callable[..., Any]]]:
    pairs = []
    for sync_cls, async_cls in TWINS:
        sync_methods, async_methods = public_methods(sync_cls), public_methods(async_cls)
        for name, method in sync_methods.items():
            pairs.append(
                (
                    f"{sync_cls.__name__}.{name}",
                    method,
                    async_methods[ASYNC_DUNDERS.get(name, name)],
                )
            )
    return pairs


@pytest.mark.parametrize(("sync_cls", "async_cls"), TWINS)
def test_the_twins_have_the_same_public_methods(sync_cls: type, async_cls: type) -> None:
    sync_names = set(public_methods(sync_cls))
    async_names = set(public_methods(async_cls))
    assert {ASYNC_DUNDERS.get(name, name) for name in sync_names} == async_names


@pytest.mark.parametrize(("name", "sync", "async_"), twin_pairs())
def test_each_pair_has_the_same_signature(
    name: str, sync: Callable[..., Any], async_: Callable[..., Any]
) -> None:
    sync_signature, async_signature = inspect.signature(sync), inspect.signature(async_)
    assert [
        (p.name, p.kind, p.default, p.annotation) for p in sync_signature.parameters.values()
    ] == [
        (p.name, p.kind, p.default, blocking(p.annotation))
        for p in async_signature.parameters.values()
    ], name
    assert sync_signature.return_annotation == blocking(async_signature.return_annotation), name


@pytest.mark.parametrize(("name", "sync", "async_"), twin_pairs())
def test_each_pair_is_of_its_flavour(
    name: str, sync: Callable[..., Any], async_: Callable[..., Any]
) -> None:
    if inspect.isasyncgenfunction(async_):
        assert inspect.isgeneratorfunction(sync), name
    else:
        assert inspect.iscoroutinefunction(async_), name
        assert not inspect.iscoroutinefunction(sync), name
        assert not inspect.isgeneratorfunction(sync), name


@pytest.mark.parametrize("cls", [BrokerClient, AsyncBrokerClient])
def test_every_public_client_method_has_its_docstring(cls: type) -> None:
    assert inspect.getdoc(cls)
    undocumented = [
        name
        for name, method in public_methods(cls).items()
        if not name.startswith("__") and not inspect.getdoc(method)
    ]
    assert not undocumented, f"{cls.__name__} methods without a docstring: {undocumented}"


def test_the_committed_blocking_files_are_what_unasync_writes() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/unasync.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
