"""The few primitives that differ between the SDK's asyncio and blocking flavours, side by side.

Owns: the hand-kept pairs the client and transport call where a line cannot be turned from
asyncio into blocking code word for word — opening and closing a channel, sleeping, a lock.
Each pair is named `async_x` / `x` (functions) or `AsyncX` / `X` (classes), so that
scripts/unasync.py, which writes clients/_sync_*.py from clients/_async_*.py, rewrites a call
of one into a call of the other with its two general rules and no special case.

Does not own: anything else about channels or calls (orbitq.clients._transport).
"""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import grpc.aio

from orbitq.clients._transport import Settings, channel_credentials, channel_options

AsyncLock = asyncio.Lock
Lock = threading.Lock

async_sleep = asyncio.sleep
sleep = time.sleep


def async_open_channel(settings: Settings) -> grpc.aio.Channel:
    credentials = channel_credentials(settings)
    options = channel_options(settings)
    if credentials is None:
        return grpc.aio.insecure_channel(settings.target, options=options)
    return grpc.aio.secure_channel(settings.target, credentials, options=options)


def open_channel(settings: Settings) -> grpc.Channel:
    credentials = channel_credentials(settings)
    options = channel_options(settings)
    if credentials is None:
        return grpc.insecure_channel(settings.target, options=options)
    return grpc.secure_channel(settings.target, credentials, options=options)


async def async_close_channel(channel: grpc.aio.Channel) -> None:
    await channel.close(None)  # no grace: calls still running are cancelled


def close_channel(channel: grpc.Channel) -> None:
    channel.close()
