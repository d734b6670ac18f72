"""All database I/O of paperwire: the tables (`models`), their migrations (`migrations/`),
and one small store per entity, each returning plain frozen rows (`rows`).

`Store` gathers them: `store.feeds`, `store.papers`, `store.people`, `store.digests`,
`store.models`, `store.health` (the figures of the console and `paperwire status`) and
`store.admin` (audit log, console sessions) and `store.subscriber` (what a subscriber's own
page reads). Every method opens its own short transaction;
times come in as parameters (this package never reads the clock).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from daemon.db.admin import AdminRecords
from daemon.db.digests import Digests
from daemon.db.engine import SchemaError, check_schema, make_engine
from daemon.db.feeds import Feeds
from daemon.db.health import Health
from daemon.db.model_state import ModelStates
from daemon.db.papers import Papers
from daemon.db.people import People
from daemon.db.subscriber import SubscriberPages


class Store:
    """The database, one store per entity."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.feeds = Feeds(engine)
        self.papers = Papers(engine)
        self.people = People(engine)
        self.digests = Digests(engine)
        self.models = ModelStates(engine)
        self.health = Health(engine)
        self.admin = AdminRecords(engine)
        self.subscriber = SubscriberPages(engine)


__all__ = ["SchemaError", "Store", "check_schema", "make_engine"]
