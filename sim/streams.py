"""Stream transfer helpers for Amaranth-simulator testbenches."""

__all__ = ["idle_cycles", "stream_get", "stream_put"]


def idle_cycles(rng, stall_probability):
    """How long a producer or consumer waits before its next transfer (random stalls)."""
    if stall_probability and rng.random() < stall_probability:
        return int(rng.integers(1, 4))
    return 0


async def stream_put(ctx, stream, payload, *, idle=0):
    """Send one beat on ``stream`` after ``idle`` cycles with ``valid`` low."""
    for _ in range(idle):
        await ctx.tick()
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, idle=0):
    """Receive one beat from ``stream`` after ``idle`` cycles with ``ready`` low."""
    for _ in range(idle):
        await ctx.tick()
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload
