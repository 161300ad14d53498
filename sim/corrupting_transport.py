"""A :class:`sw.link.Transport` wrapper that damages chosen transactions, to test that the
host link's protocol detects and recovers from line faults (SPI in ``sim/tb_tt.py``, UART in
``sim/tb_board.py``)."""

from hdl.host_link import FILL, Command
from sw.link import Transport

__all__ = ["CorruptingTransport"]


class CorruptingTransport(Transport):
    """Flips one bit of the requests and of the reply bytes chosen by ``request_faults`` and
    ``reply_faults``, and drops one byte of the requests chosen by ``drop_faults``:
    ``(first transaction, predicate(request) -> bool)`` pairs; a fault fires at the first
    transaction from that number on whose request the predicate accepts (at most one fault
    per transaction: bit flips in the request first, then drops, then reply faults).
    ``fired`` lists ``(kind, command name, bit or byte index)`` of every fault so far."""

    def __init__(self, inner, rng, request_faults=(), reply_faults=(), drop_faults=()):
        self.inner, self.rng = inner, rng
        self.request_faults, self.reply_faults = list(request_faults), list(reply_faults)
        self.drop_faults = list(drop_faults)
        self.frames, self.request, self.fired = 0, b"", []

    def _due(self, faults):
        for i, (start, accept) in enumerate(faults):
            if self.frames >= start and accept(self.request):
                del faults[i]
                return True
        return False

    @property
    def pending(self):
        """Faults that have not fired yet."""
        return len(self.request_faults) + len(self.reply_faults) + len(self.drop_faults)

    async def begin(self):
        self.frames += 1
        self.reply_fault = None
        await self.inner.begin()

    async def send(self, data):
        self.request = bytes(data)
        name = Command(self.request[0]).name
        if self._due(self.request_faults):
            data = bytearray(data)
            bit = self.rng.randrange(8 * len(data))
            data[bit // 8] ^= 1 << bit % 8
            self.fired.append(("request", name, bit))
        elif self._due(self.drop_faults):
            data = bytearray(data)
            index = self.rng.randrange(len(data))
            del data[index]
            self.fired.append(("drop", name, index))
        elif self._due(self.reply_faults):  # one fault per transaction
            self.reply_fault = self.rng.randrange(4)  # a reply byte (every reply has 4+)
        self.replied = -1
        await self.inner.send(data)

    async def receive(self):
        byte = await self.inner.receive()
        if byte is None:  # nothing arrived in time
            return None
        if self.replied >= 0 or byte != FILL:
            self.replied += 1
        if self.reply_fault is not None and self.replied == self.reply_fault:
            byte ^= 1 << self.rng.randrange(8)
            self.fired.append(("reply", Command(self.request[0]).name, self.replied))
            self.reply_fault = None
        return byte

    async def end(self):
        await self.inner.end()

    async def resync(self):
        await self.inner.resync()
