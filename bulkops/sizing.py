"""How many items the next chunk takes.

An operation that names its `batch_size` gets exactly that. One that does not (`batch_size`
null) gets a size the engine learns as it goes: the first chunk is small, and each chunk's
measured lock hold sets the next one's size so that a chunk holds its row locks for about
`conf.CHUNK_LOCK_MS` — large chunks where items are cheap (fewer statements per item), small
ones where they are slow or contended (a single PATCH never waits long behind one).
"""

from . import conf

# Growth is bounded so that one fast chunk (a run of NOT_FOUND items) cannot jump straight to
# a size whose real items would hold their locks far too long.
MAX_GROWTH = 2


class ChunkSizer:
    def __init__(self, batch_size=None):
        self.fixed = batch_size is not None
        self.limit = batch_size if self.fixed else min(conf.FIRST_CHUNK_SIZE, conf.MAX_BATCH_SIZE)

    def learn(self, items, seconds):
        """A chunk of `items` held its records' locks for `seconds`: size the next one."""
        if self.fixed or items < self.limit or seconds <= 0:
            return  # a short chunk (end of range) says little about a full one
        ideal = int(self.limit * conf.CHUNK_LOCK_MS / 1000 / seconds)
        self.limit = max(1, min(ideal, self.limit * MAX_GROWTH, conf.MAX_BATCH_SIZE))
