"""The PhoneCalls service: create (Simple, Callback, ConferenceInvite), list/get, hang up
(DELETE) and actions (PUT).

Paths (UAPI reference 2.1):

- ``POST /uapi/phoneCalls/{userId}/simple`` -> 202 ``[{"id", "extension", "link": {"self"}}]``
  (validation in ``api.create``); ``extension`` is the extended number (``0003*210``) even when
  the request gave the short one, as GET shows it, and ``link.self`` holds the same. A
  repeated ``nonce`` of the same user returns the first call's id again, rings nobody, and says
  so with ``Idempotent-Replayed: true``. ``.../callback`` and ``.../conferenceInvite`` answer
  the same way.
- ``GET .../{userId}/{extension}`` -> 200 ``{"entry": [...], "totalResults", "startIndex",
  "itemsPerPage", "links": {"self", "next"?, "prev"?}}`` or 204;
  ``GET .../{phoneCallId}`` -> 200 ``{"entry": [call]}`` (finished calls included) or 404
  ``pc_not_found``.
- ``DELETE`` the same paths hangs up live calls (``phoneNumber``: only that party) -> 200
  ``{"entry": [{"id"}...]}`` with the ids hung up, or 204 when there was nothing to hang up.
- ``PUT .../{phoneCallId}`` with a PhoneCallAction -> 200 ``{"entry": [call]}``; actions the
  engine does not do are 501 ``request_not_implemented``; unknown ones 400 ``pc_action_invalid``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import resources
from api.action_body import PhoneCallAction
from api.body import read_json_object
from api.context import ApiContext, context
from api.create import CheckedCall, check_callback, check_conference_invite, check_simple_call
from api.errors import ApiError
from api.oauth import authenticate
from api.paging import Paging, apply_paging, page_links, parse_paging
from api.pathparams import PHONE_CALL_ID, path_value
from api.render import PHONE_CALL_FIELDS, call_path, call_resource
from api.resources import (
    CreatedPhoneCall,
    HungUp,
    HungUpCollection,
    Link,
    PageLinks,
    PhoneCallCollection,
    dump,
    dump_collection,
)
from api.scope import path_extension
from api.validation import validated
from engine.directory import Extension, User
from engine.engine import CallAction, OriginateRequest
from engine.model import PhoneCall

logger = logging.getLogger(__name__)

MAX_NUMBER_LENGTH = 64

CALL_FILTERS: dict[str, Callable[[PhoneCall], object]] = {
    "id": lambda call: str(call.id),
    "published": lambda call: call.published,
}


def _published(call: PhoneCall) -> datetime:
    return call.published


async def create_simple(request: Request) -> Response:
    return await _create(request, check_simple_call)


async def create_callback(request: Request) -> Response:
    """``POST /uapi/phoneCalls/{userId}/callback``: checked by ``api.create.check_callback``,
    then run as a Simple PhoneCall."""
    return await _create(request, check_callback)


async def create_conference_invite(request: Request) -> Response:
    """``POST /uapi/phoneCalls/{userId}/conferenceInvite``: checked by
    ``api.create.check_conference_invite``; the engine checks the PIN and the room."""
    return await _create(request, check_conference_invite)


async def _create(request: Request, check: Callable[..., CheckedCall]) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    ctx.refuse_when_draining()
    body = await read_json_object(request)
    user_text = request.path_params["userId"]
    checked = check(
        principal,
        ctx.directory,
        user_text,
        dict(request.query_params),
        body,
        ctx.default_wait_for_pickup(),
        ctx.callback_policy,
    )
    if checked.status_callback is not None and ctx.callbacks is None:
        raise ApiError(
            501, "request_not_implemented", "statusCallback delivery is not enabled on this server"
        )
    originate_request = OriginateRequest(
        user_id=checked.user.id,
        organization_id=checked.extension.organization,
        extension=checked.extension,
        sources=checked.sources,
        destinations=checked.destinations,
        caller_id=checked.caller_id,
        caller_id_destination=checked.caller_id_destination,
        nonce=checked.nonce,
        wait_for_pickup=checked.wait_for_pickup,
        call_duration=checked.call_duration,
        allow_public_transfer=checked.allow_public_transfer,
        video=checked.video,
        status_callback=checked.status_callback,
        targets=checked.targets,
        conference=checked.conference,
        pin=checked.pin,
    )
    # a refusal of the engine (EngineDraining...) answers as api.mapping says
    call, created = await ctx.engine.originate(originate_request)
    if created and checked.status_callback is not None and ctx.callbacks is not None:
        ctx.callbacks.watch(call.id, checked.status_callback)
    # The extension charged, in the extended form GET shows, whatever form the request used
    # (a replayed nonce may even name a call of another extension).
    extension_text = str(call.extension)
    link = call_path(ctx.public_url, user_text, extension_text, call.id)
    logger.info(
        "call %s %s for user %s by app %s",
        call.id,
        "created" if created else "replayed (same nonce)",
        checked.user.id,
        principal.client_id,
        extra={"call": call.id},
    )
    headers = {"Location": link}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    # built without re-checking the patterns the document states: the call exists already
    created_call = CreatedPhoneCall.model_construct(
        id=call.id, extension=extension_text, link=Link.model_construct(self=link)
    )
    return JSONResponse([dump(created_call)], status_code=202, headers=headers)


async def _calls_of(ctx: ApiContext, user: User, extension: Extension | None) -> list[PhoneCall]:
    extended = None if extension is None else extension.extended
    return list(await ctx.engine.alist_calls(user_id=user.id, extension=extended))


async def _page_of_calls(
    ctx: ApiContext, user: User, extension: Extension | None, paging: Paging
) -> tuple[int, list[PhoneCall]]:
    """(how many match, one page). Without a filter the store pages (it keeps the same order:
    publish time, then creation), so a long history is not loaded to show 20 calls."""
    if paging.filter_by is not None:
        calls = await _calls_of(ctx, user, extension)
        return apply_paging(calls, paging, CALL_FILTERS, _published)
    extended = None if extension is None else extension.extended
    total = await ctx.engine.acount_calls(user_id=user.id, extension=extended)
    page = await ctx.engine.alist_calls(
        user_id=user.id,
        extension=extended,
        limit=paging.count,
        offset=paging.start_index,
        newest_first=paging.descending,
    )
    return total, page


async def owned_call(
    ctx: ApiContext, user: User, extension: Extension | None, call_id: str
) -> PhoneCall:
    """The call ``call_id`` if it belongs to the user (and extension), else 404 pc_not_found."""
    call = await ctx.engine.aget_call(path_value(PHONE_CALL_ID, call_id))
    if (
        call is None
        or call.user_id != user.id
        or (extension is not None and call.extension != extension.extended)
    ):
        raise ApiError(404, "pc_not_found", f"No PhoneCall {call_id[:64]!r} here")
    return call


def _self_url(ctx: ApiContext, request: Request, call: PhoneCall) -> str:
    user_text = request.path_params["userId"]
    extension_text = request.path_params["extension"]
    if extension_text == "@self":
        extension_text = str(call.extension)
    return call_path(ctx.public_url, user_text, extension_text, call.id)


def _resource(ctx: ApiContext, request: Request, call: PhoneCall) -> resources.PhoneCall:
    return call_resource(call, ctx.directory, _self_url(ctx, request, call))


async def get_calls(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    user, extension = path_extension(
        principal, ctx.directory, request.path_params["userId"], request.path_params["extension"]
    )
    query = request.query_params
    paging = parse_paging(
        query, filterable=CALL_FILTERS, date_fields=("published",), field_names=PHONE_CALL_FIELDS
    )
    call_id = request.path_params.get("phoneCallId")
    if call_id is not None:
        call = await owned_call(ctx, user, extension, call_id)
        one = PhoneCallCollection(entry=[_resource(ctx, request, call)])
        return JSONResponse(dump_collection(one, paging.fields))
    total, page = await _page_of_calls(ctx, user, extension, paging)
    if not page:
        return Response(status_code=204)
    links = page_links(
        ctx.public_url, request.url.path, request.query_params.multi_items(), paging, total
    )
    listing = PhoneCallCollection(
        entry=[_resource(ctx, request, call) for call in page],
        totalResults=total,
        startIndex=paging.start_index,
        itemsPerPage=len(page),
        links=PageLinks.model_validate(links),
    )
    return JSONResponse(dump_collection(listing, paging.fields))


async def delete_calls(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    user, extension = path_extension(
        principal, ctx.directory, request.path_params["userId"], request.path_params["extension"]
    )
    phone_number = request.query_params.get("phoneNumber")
    if phone_number is not None and (
        not phone_number.strip() or len(phone_number) > MAX_NUMBER_LENGTH
    ):
        raise ApiError(400, "pc_number_invalid", "phoneNumber must be a party's number")
    call_id = request.path_params.get("phoneCallId")
    if call_id is not None:
        calls = [await owned_call(ctx, user, extension, call_id)]
    else:
        calls = await _calls_of(ctx, user, extension)
    hung_up: list[str] = []
    for call in calls:
        if call.ended is not None:
            continue
        if await ctx.engine.hangup(call.id, phone_number.strip() if phone_number else None):
            hung_up.append(call.id)
    if not hung_up:
        return Response(status_code=204)
    for call_id in hung_up:
        logger.info(
            "call %s hung up for user %s by app %s",
            call_id,
            user.id,
            principal.client_id,
            extra={"call": call_id},
        )
    return JSONResponse(dump(HungUpCollection(entry=[HungUp(id=call_id) for call_id in hung_up])))


def check_action(body: dict[str, Any]) -> CallAction:
    """A PhoneCallAction body -> CallAction; 400/501 for what cannot be done."""
    action = validated(PhoneCallAction, body)
    return CallAction(
        action=action.action,
        send_call_to=action.sendCallTo,
        phone_call_view_id=action.phoneCallViewId,
        transfer_number=action.transferNumber,
        transfer_from_number=action.transferFromNumber,
        format=action.format,
        wait_for_pickup=action.waitForPickUp,
        caller_id=action.callerId,
        max_in_parking=action.maxInParking,
        private_whisper=action.privateW,
    )


async def put_call(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    user, extension = path_extension(
        principal, ctx.directory, request.path_params["userId"], request.path_params["extension"]
    )
    body = await read_json_object(request)
    action = check_action(body)
    call = await owned_call(ctx, user, extension, request.path_params["phoneCallId"])
    ctx.refuse_when_draining()
    # a refusal of the engine (CallNotBridged, PartyNotFound...) answers as api.mapping says
    updated = await ctx.engine.act(call.id, action)
    logger.info(
        "call %s: %s by app %s",
        call.id,
        action.action,
        principal.client_id,
        extra={"call": call.id},
    )
    return JSONResponse(
        dump_collection(PhoneCallCollection(entry=[_resource(ctx, request, updated)]))
    )
