"""What the catalogue's parts share: the store, and storing an object with its event."""

from __future__ import annotations

from . import objects
from .store import Obj, Store, changed_attributes


class CatalogParts:
    store: Store

    # -- shared ------------------------------------------------------------------------

    def _created(self, obj: Obj, event_type: str) -> Obj:
        self.store.insert(obj)
        self.store.emit(event_type, obj)
        return obj

    def _updated(self, obj: Obj, before: Obj, event_type: str) -> Obj:
        previous = changed_attributes(before, self.store.snapshot(obj))
        if previous:
            self.store.emit(event_type, obj, previous)
        return obj

    def _deleted(self, obj: Obj, event_type: str) -> Obj:
        self.store.emit(event_type, obj)
        tombstone = objects.deleted(obj["id"], obj["object"])
        self.store.table(obj["object"])[obj["id"]] = tombstone
        return tombstone
