"""Reachability's timestamps are the database format, to the string, however they are formatted."""

import random
import time

from reactorkit.api.leader.reachability import _iso
from reactorkit.core.clock import utc_iso_ms


def test_last_seen_at_is_formatted_as_the_database_formats_timestamps():
    rng = random.Random(18)
    now = time.time()
    stamps = [now + rng.uniform(-1e7, 1e7) for _ in range(20000)]
    # halfway and near-carry microseconds, where rounding decides the millisecond or the second
    stamps += [int(now) + rng.randint(0, 999) / 1000 + edge
               for edge in (0.0005, 0.0004999999, 0.0009999996, 0.9999995, 0.9999996) for _ in range(2000)]
    stamps += [0.0, 1.0, 4102444799.9999995]
    rng.shuffle(stamps)  # consecutive calls within and across seconds
    assert [_iso(ts) for ts in stamps] == [utc_iso_ms(ts) for ts in stamps]
