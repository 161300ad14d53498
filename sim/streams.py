"""Stream transfer helpers for Amaranth-simulator testbenches."""

__all__ = ["HANDSHAKE_LIMIT", "handshake", "idle_cycles", "stream_get", "stream_put"]

#: Cycles a helper waits for a handshake before it fails the test: a design that drops a
#: ``ready`` or a ``valid`` fails with the signal's name instead of hanging the suite.
HANDSHAKE_LIMIT = 1 << 16


def idle_cycles(rng, stall_probability):
    """How long a producer or consumer waits before its next transfer (random stalls)."""
    if stall_probability and rng.random() < stall_probability:
        return int(rng.integers(1, 4))
    return 0


async def handshake(ctx, condition, *sampled, limit=HANDSHAKE_LIMIT):
    """Wait for the first clock edge at which ``condition`` is high (``ctx.tick().until``,
    bounded): returns the values of ``sampled`` at that edge, raises ``AssertionError``
    naming ``condition`` after ``limit`` edges without it."""
    for _ in range(limit):
        _, _, high, *values = await ctx.tick().sample(condition, *sampled)
        if high:
            return values
    raise AssertionError(f"{condition!r} not high within {limit} cycles")


async def stream_put(ctx, stream, payload, *, idle=0):
    """Send one beat on ``stream`` after ``idle`` cycles with ``valid`` low."""
    for _ in range(idle):
        await ctx.tick()
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await handshake(ctx, stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, idle=0):
    """Receive one beat from ``stream`` after ``idle`` cycles with ``ready`` low."""
    for _ in range(idle):
        await ctx.tick()
    ctx.set(stream.ready, 1)
    payload, = await handshake(ctx, stream.valid, stream.payload)
    ctx.set(stream.ready, 0)
    return payload
