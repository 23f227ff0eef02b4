"""The contacts of ``StoreService``: the SIP path reads them synchronously for every call to
an extension, so with PostgreSQL they are read from a copy in memory: this node's own
registrations change it at once (and are queued for the database), the other nodes' ones
come from a reload of the table every ``refresh_contacts`` seconds. SQLite is called in place.
"""

from __future__ import annotations

import time
from functools import partial

import trio

from engine.store.interface import ContactRecord, StoreError
from engine.store.service_core import ServiceCore


class ContactsCopy(ServiceCore):
    """The contacts' writes and reads, and the reload of the copy."""

    def save_contact(
        self,
        extended: str,
        contact_uri: str,
        received: str,
        expires_at: float,
        call_id: str,
        cseq: int,
        path: tuple[str, ...] = (),
    ) -> None:
        args = (extended, contact_uri, received, expires_at, call_id, cseq, path)
        if not self.queued:
            self.backend.save_contact(*args)
            return
        self._contacts.setdefault(extended, {})[contact_uri] = ContactRecord(*args)
        self._contact_writes += 1
        self._writes.append(lambda b: b.save_contact(*args))

    def remove_contact(self, extended: str, contact_uri: str) -> None:
        if not self.queued:
            self.backend.remove_contact(extended, contact_uri)
            return
        self._contacts.get(extended, {}).pop(contact_uri, None)
        self._contact_writes += 1
        self._writes.append(lambda b: b.remove_contact(extended, contact_uri))

    def remove_contacts(self, extended: str) -> None:
        if not self.queued:
            self.backend.remove_contacts(extended)
            return
        self._contacts.pop(extended, None)
        self._contact_writes += 1
        self._writes.append(lambda b: b.remove_contacts(extended))

    def contacts(self, extended: str, now: float) -> list[ContactRecord]:
        if not self.queued:
            return self.backend.contacts(extended, now)
        return [r for r in self._contacts.get(extended, {}).values() if r.expires_at > now]

    # ------------------------------------------------------------------ the reload

    async def _contacts_reloader(self) -> None:
        while True:
            await trio.sleep(self.refresh_contacts)
            if self._up:
                await self._reload_contacts()

    async def _reload_contacts(self) -> None:
        before = self._contact_writes
        try:
            records = await self._in_thread(partial(self.backend.all_contacts, time.time()))
        except StoreError:
            return  # the prober and flusher report outages; keep the copy
        if self._contact_writes != before:
            return  # an own change since the read started: the next reload gets it
        copy: dict[str, dict[str, ContactRecord]] = {}
        for record in records:
            copy.setdefault(record.extended, {})[record.contact_uri] = record
        self._contacts = copy
