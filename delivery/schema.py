"""The tables ``delivery`` owns (endpoints, the delivery log), on their own ``metadata``."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
