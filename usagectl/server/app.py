"""The FastAPI application of ``usagectl serve`` (docs/api.md).

Cross-cutting rules live here, once: bearer authentication (constant-time, the token never
logged), owner isolation, per-token rate limits, ``X-Request-Id``, and one error shape for every
error — ``{"error": {"code", "message", "request_id", "details"}}`` — including FastAPI's own 404,
405 and 422. The database is opened read-only for each request with a short lock wait, as the
reports open it; a lock an ingest holds past that wait is 503 with ``Retry-After``.
"""

import logging
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import duckdb
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from usagectl import __version__
from usagectl.contracts import Contract, parse_as_of, period_containing
from usagectl.contracts.periods import local_midnight
from usagectl.errors import (DatabaseLockedError, NotFoundError, UsagectlError, ValidationError)
from usagectl.meters.select import Window
from usagectl.renderers import jsonout
from usagectl.server import leaf
from usagectl.server.tokens import Grant, find_grant

log = logging.getLogger("usagectl.serve")

#: Requests per minute and token (the v2 API's documented limits): ``check`` has its own.
RATE_LIMITS = {"default": 30, "check": 60}
#: How long a request waits for a lock an ingest holds before answering 503. An ingest holds
#: the write lock only for its two short transactions (docs/ingest.md "Locks").
REQUEST_WAIT = 2.0
#: ``Retry-After`` on 503: an ingest's commit of a file of a few million rows.
RETRY_AFTER_LOCKED = 2
#: The errors every route may answer (OpenAPI), in the one error shape.
ERROR_RESPONSES = {401: "No valid bearer token", 403: "Another owner's contract, or another "
                   "user's figures", 404: "No such contract, meter or route",
                   422: "Malformed parameters", 429: "Rate limit reached (Retry-After)",
                   503: "The database is busy with an ingest's commit (Retry-After)"}
#: The longest range `GET /api/v2/usage/tokens/monthly` answers (three years): each month is a
#: query of its own.
MONTHLY_SPAN = timedelta(days=1096)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass
class ServeConfig:
    """What ``serve`` was started with."""

    db: str | None
    grants: list[Grant]
    as_of: str | None = None
    contracts_file: str | None = None
    rate_limits: dict[str, int] = field(default_factory=lambda: dict(RATE_LIMITS))
    wait: float = REQUEST_WAIT
    #: ``serve --alternatives FILE``: the other plans the plan route compares (read at start;
    #: a request never names a file).
    alternatives_file: str | None = None


# --- Response schemas (OpenAPI) -----------------------------------------------------------

class LeafContract(BaseModel):
    id: str = Field(description="CONTRACT:METER")
    product: str
    startDate: str
    endDate: str
    region: str | None = None


class LeafUserArea(BaseModel):
    leafUserId: str
    totalArea: float


class LeafConsumption(BaseModel):
    areaUnit: str
    date: str
    totalUniqueArea: float
    leafUsersAreas: list[LeafUserArea]


class LeafDay(BaseModel):
    date: str
    totalArea: float
    dailyArea: float


class LeafAreaPerDay(BaseModel):
    areaUnit: str
    areaPerDay: list[LeafDay]


class LandUsage(BaseModel):
    tier: str | None
    tokens_used: int | float | str
    tokens_included: int | float | str
    tokens_overage: int | float | str
    overage_cents: int
    period_start: str | None
    period_end: str | None


class CheckRequest(BaseModel):
    contract: str | None = Field(None, max_length=200, description="Default: the owner's "
                                                                    "only contract.")
    meter: str = Field(max_length=200)
    amount: Decimal = Field(gt=0, le=Decimal("1e30"), description="Units the operation needs.")


class ErrorBody(BaseModel):
    code: str
    message: str
    request_id: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An error answered in the land-data API's shape."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = headers or {}


#: HTTP status of each library error code.
_STATUS = {"validation_error": 422, "not_found": 404, "database_locked": 503,
           "usage_limit_exceeded": 429, "io_error": 500, "internal_error": 500}
#: Codes of the errors FastAPI itself raises.
_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 422: "validation_error", 429: "rate_limited"}


def _error_response(request: Request, status: int, code: str, message: str,
                    details: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    rid = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    body = {"error": {"code": code, "message": message, "request_id": rid, "details": details}}
    return Response(jsonout.dumps(body), status_code=status, media_type="application/json",
                    headers={**(headers or {}), "X-Request-Id": rid})


def _json(doc: Any, headers: dict[str, str] | None = None) -> Response:
    """A document as the CLI writes it (:mod:`usagectl.renderers.jsonout`)."""
    return Response(jsonout.dumps(doc), media_type="application/json", headers=headers)


class RateLimiter:
    """A sliding minute per (token, kind): the N+1-th request within 60 s is refused with the
    seconds until the oldest one leaves the window."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits
        self._seen: dict[tuple[int, str], deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, grant: Grant, kind: str) -> int | None:
        """None when admitted, else the ``Retry-After`` seconds."""
        now = time.monotonic()
        limit = self.limits[kind]
        with self._lock:
            seen = self._seen.setdefault((grant.number, kind), deque())
            while seen and seen[0] <= now - 60.0:
                seen.popleft()
            if len(seen) >= limit:
                return max(1, math.ceil(seen[0] + 60.0 - now))
            seen.append(now)
            return None


@dataclass
class Caller:
    """The authenticated caller of one request and the moment taken as now."""

    grant: Grant
    as_of: datetime


def create_app(cfg: ServeConfig) -> FastAPI:
    """The application: every route, its auth, limits and error handling."""
    app = FastAPI(title="usagectl serve", version=__version__,
                  description="Vendors' usage endpoints recomputed from your own logs "
                              "(docs/api.md).",
                  docs_url=None, redoc_url=None,  # the HTML UIs fetch scripts from a CDN
                  responses={status: {"model": ErrorResponse, "description": text}
                             for status, text in ERROR_RESPONSES.items()})
    limiter = RateLimiter(cfg.rate_limits)
    bearer = HTTPBearer(auto_error=False, description="A token from the --tokens file.")
    what_if = _what_if(cfg.contracts_file)
    alternatives = _alternatives(cfg.alternatives_file)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[..., Any]) -> Response:
        given = request.headers.get("x-request-id")
        rid = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        request.state.request_id = rid
        try:
            response = await call_next(request)
        except Exception as exc:  # a bug: the error shape, never a traceback to the client
            log.exception("request %s failed", rid)
            return _error_response(request, 500, "internal_error",
                                   f"internal error ({type(exc).__name__}); this is a bug in "
                                   f"usagectl {__version__}: report it with request id {rid}", {})
        response.headers["X-Request-Id"] = rid
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _error_response(request, exc.status, exc.code, exc.message, exc.details,
                               exc.headers)

    @app.exception_handler(UsagectlError)
    async def library_error(request: Request, exc: UsagectlError) -> Response:
        status = _STATUS.get(exc.code, 500)
        headers = {"Retry-After": str(RETRY_AFTER_LOCKED)} if status == 503 else None
        message = exc.message
        if isinstance(exc, DatabaseLockedError):
            message = ("the database is busy with an ingest's commit; retry in "
                       f"{RETRY_AFTER_LOCKED} s")
        details = {k: v for k, v in exc.details.items() if k not in ("path", "pid", "program")}
        return _error_response(request, status, exc.code, message, details, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = {404: f"no route {request.url.path}",
                   405: f"method {request.method} is not allowed on {request.url.path}"
                   }.get(exc.status_code, str(exc.detail))
        return _error_response(request, exc.status_code, code, message, {},
                               dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [{"parameter": ".".join(str(p) for p in e.get("loc", ())[1:]) or None,
                     "in": (e.get("loc") or ("request",))[0], "message": e.get("msg")}
                    for e in exc.errors()]
        names = ", ".join(p["parameter"] or p["in"] for p in problems)
        return _error_response(request, 422, "validation_error",
                               f"invalid request parameters: {names}", {"problems": problems})

    def access(kind: str) -> Callable[..., Caller]:
        def dependency(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                              Depends(bearer)]) -> Caller:
            grant = find_grant(cfg.grants, credentials.credentials) if credentials else None
            if grant is None:
                raise ApiError(401, "unauthorized",
                               "a valid bearer token is required (Authorization: Bearer TOKEN)",
                               headers={"WWW-Authenticate": "Bearer"})
            retry = limiter.admit(grant, kind)
            if retry is not None:
                raise ApiError(429, "rate_limited",
                               f"rate limit of {cfg.rate_limits[kind]} requests per minute "
                               f"reached; retry in {retry} s",
                               {"limit_per_minute": cfg.rate_limits[kind]},
                               headers={"Retry-After": str(retry)})
            return Caller(grant, parse_as_of(cfg.as_of))
        return dependency

    CallerDep = Annotated[Caller, Depends(access("default"))]

    @contextmanager
    def reading() -> Iterator[duckdb.DuckDBPyConnection]:
        from usagectl.store import db as store

        con = store.connect(cfg.db, read_only=True, wait=cfg.wait)
        try:
            yield con
        finally:
            con.close()
            # The server never writes, not even derived data (the area cache): a write open
            # beside this process's readers would fail them. Reports recompute what it drops.
            store._deferred.pop(str(store.resolve_db_path(cfg.db).resolve()), None)

    def owned(con: duckdb.DuckDBPyConnection, caller: Caller, contract_id: str) -> Contract:
        """The contract if the caller's owner holds it: 404 when there is none, 403 when it
        is another owner's (never the list of ids a CLI message would suggest)."""
        from usagectl.store import contracts_repo

        if what_if is not None:
            c = what_if.get(contract_id)
        else:
            try:
                c = contracts_repo.get_contract(con, contract_id)
            except NotFoundError:
                c = None
        if c is None:
            raise ApiError(404, "not_found", f"no contract {contract_id!r}",
                           {"contract_id": contract_id})
        if c.owner != caller.grant.owner:
            raise ApiError(403, "forbidden", f"contract {contract_id!r} belongs to another "
                                             "owner", {"contract_id": contract_id})
        return c

    def owner_contracts(con: duckdb.DuckDBPyConnection, caller: Caller) -> list[Contract]:
        from usagectl.store import contracts_repo

        if what_if is not None:
            return [c for _, c in sorted(what_if.items()) if c.owner == caller.grant.owner]
        return contracts_repo.list_contracts(con, caller.grant.owner)

    def window_at(c: Contract, caller: Caller, moment: datetime, user: str | None = None
                  ) -> Window | None:
        p = period_containing(c, moment)
        if p is None:
            return None
        return Window(c, p, caller.as_of, None, user or caller.grant.user)

    def leaf_contract(con: duckdb.DuckDBPyConnection, caller: Caller, contract_id: str
                      ) -> tuple[Contract, Any]:
        cid, meter = leaf.split_id(contract_id)
        c = owned(con, caller, cid)
        return c, leaf.pick_meter(c, meter, contract_id)

    # --- Leaf ---------------------------------------------------------------------------
    tags = ["Leaf billing"]
    ContractId = Annotated[str, Path(description="CONTRACT:METER as listed (or a contract id: "
                                                 "its first unique_area meter).")]
    Moment = Annotated[str | None, Query(description="A date or ISO 8601 instant; its date "
                                                     "is a day of the contract's calendar.")]

    @app.get("/billing/contracts", tags=tags, response_model=list[LeafContract],
             summary="List your contracts (one per unique_area meter)")
    def leaf_contracts(caller: CallerDep) -> Response:
        with reading() as con:
            docs = leaf.list_docs(owner_contracts(con, caller), caller.as_of)
        return _json(docs, {"X-Total-Count": str(len(docs))})

    @app.get("/billing/contracts/{contract_id}", tags=tags, response_model=LeafContract,
             summary="Get contract details")
    def leaf_contract_details(contract_id: ContractId, caller: CallerDep) -> Response:
        with reading() as con:
            c, m = leaf_contract(con, caller, contract_id)
            return _json(leaf.contract_doc(c, m, caller.as_of))

    @app.get("/billing/contracts/{contract_id}/consumption", tags=tags,
             response_model=LeafConsumption, summary="Area processed on one day")
    def leaf_consumption(contract_id: ContractId, caller: CallerDep,
                         timestamp: Moment = None) -> Response:
        with reading() as con:
            c, m = leaf_contract(con, caller, contract_id)
            day, _ = leaf.day_of(timestamp, "timestamp", caller.as_of.astimezone(c.zone).date())
            window = window_at(c, caller, local_midnight(day, c.zone))
            if window is None:
                return _json({"areaUnit": leaf.AREA_UNITS[m.unit_label],
                              "date": leaf.instant(local_midnight(day, c.zone)),
                              "totalUniqueArea": 0.0, "leafUsersAreas": []})
            return _json(leaf.consumption(con, window, m, day))

    def _range(con: duckdb.DuckDBPyConnection, caller: Caller, contract_id: str,
               start_time: str | None, end_time: str | None, user: str | None) -> Response:
        c, m = leaf_contract(con, caller, contract_id)
        if caller.grant.user is not None and user not in (None, caller.grant.user):
            raise ApiError(403, "forbidden", "this token sees only its own user's figures",
                           {"user_id": user})
        today = caller.as_of.astimezone(c.zone).date()
        current = period_containing(c, caller.as_of)
        first = current.start.astimezone(c.zone).date() if current else today
        start, _ = leaf.day_of(start_time, "startTime", first)
        end, past_midnight = leaf.day_of(end_time, "endTime", today)
        if end_time is None or past_midnight:
            end = end.fromordinal(end.toordinal() + 1)
        window = Window(c, current or leaf_period(c, start), caller.as_of, None,
                        user or caller.grant.user)
        return _json(leaf.area_per_day(con, window, m, start, end))

    def leaf_period(c: Contract, start: Any) -> Any:
        p = period_containing(c, local_midnight(start, c.zone))
        if p is None:
            raise ValidationError(f"startTime {start.isoformat()} is in no period of "
                                  f"contract {c.id}", {"parameter": "startTime"})
        return p

    @app.get("/billing/contracts/{contract_id}/consumption/api-owner", tags=tags,
             response_model=LeafAreaPerDay, summary="Daily area of the whole organisation")
    def leaf_api_owner(contract_id: ContractId, caller: CallerDep,
                       startTime: Moment = None, endTime: Moment = None) -> Response:  # noqa: N803
        with reading() as con:
            return _range(con, caller, contract_id, startTime, endTime, None)

    @app.get("/billing/contracts/{contract_id}/consumption/leaf-user/{user_id}", tags=tags,
             response_model=LeafAreaPerDay, summary="Daily area of one user")
    def leaf_user(contract_id: ContractId, user_id: str, caller: CallerDep,
                  startTime: Moment = None, endTime: Moment = None) -> Response:  # noqa: N803
        with reading() as con:
            return _range(con, caller, contract_id, startTime, endTime, user_id)

    # --- Land-data API -----------------------------------------------------------------------
    def owner_only(caller: Caller) -> None:
        if caller.grant.user is not None:
            raise ApiError(403, "forbidden", "this route reports the owner's totals; a token "
                                             "limited to one user cannot read it", {})

    @app.get("/api/public/v1/usage/", tags=["Land-data API"], response_model=LandUsage,
             summary="Current-period token usage (usage --owner, the token meter)")
    def land_usage(caller: CallerDep) -> Response:
        from usagectl.reports import status
        from usagectl.server import landdata

        owner_only(caller)
        with reading() as con:  # the token meter alone: the other meters are not answered
            rows = status.usage(con, caller.grant.owner, caller.as_of, first_token_meter=True)
        return _json(landdata.usage_doc(rows))

    @app.get("/api/public/v1/usage/breakdown/", tags=["Land-data API"],
             response_model=list[dict[str, Any]],
             summary="Every meter of the current period(s): the usage command's rows")
    def land_breakdown(caller: CallerDep) -> Response:
        from usagectl.reports import status

        owner_only(caller)
        with reading() as con:
            rows = status.usage(con, caller.grant.owner, caller.as_of)
        return _json(rows, {"X-Total-Count": str(len(rows))})

    # --- v2 (document-analysis API) ------------------------------------------------------
    v2 = ["v2 usage"]
    ContractQ = Annotated[str | None, Query(
        description="Contract id (default: the owner's only contract).", max_length=200)]
    PeriodQ = Annotated[str | None, Query(
        description="current (default), previous, an index or a date inside the period.",
        max_length=40)]
    FromQ = Annotated[str | None, Query(alias="from", max_length=40,
                                        description="Range start: a date or an instant.")]
    ToQ = Annotated[str | None, Query(alias="to", max_length=40,
                                      description="Range end, excluded.")]
    MeterQ = Annotated[list[str] | None, Query(description="Only these meters.")]
    LimitQ = Annotated[int, Query(ge=1, le=1000)]
    PageQ = Annotated[int | None, Query(ge=1, le=1000)]  # no limit unless given
    OffsetQ = Annotated[int, Query(ge=0, le=10**9)]

    def chosen(con: duckdb.DuckDBPyConnection, caller: Caller, contract_id: str | None
               ) -> Contract:
        if contract_id:
            return owned(con, caller, contract_id)
        cs = owner_contracts(con, caller)
        if len(cs) == 1:
            return cs[0]
        if not cs:
            raise ApiError(404, "not_found", "this token's owner has no contract", {})
        raise ApiError(422, "validation_error", "this owner has several contracts: pass "
                       "contract=ID", {"parameter": "contract", "valid": [c.id for c in cs]})

    def period_window(con: duckdb.DuckDBPyConnection, caller: Caller, contract_id: str | None,
                      period: str | None) -> Window:
        """The window of a v2 or licence route: the contract, the period (`period`, as
        `--period`), the moment taken as now and the token's user."""
        from usagectl.contracts import resolve_period

        c = chosen(con, caller, contract_id)
        return Window(c, resolve_period(c, period, caller.as_of), caller.as_of, None,
                      caller.grant.user)

    def view(caller: Caller, contract_id: str | None, period: str | None, name: str,
             date_from: str | None = None, date_to: str | None = None, **options: Any
             ) -> Response:
        from usagectl.reports.ranges import check_order, parse_bound
        from usagectl.reports.report import ViewOptions, build_view

        with reading() as con:
            window = period_window(con, caller, contract_id, period)
            c = window.contract
            lo = parse_bound(date_from, c, "from")
            hi = parse_bound(date_to, c, "to")
            check_order(lo, hi)
            opts = ViewOptions(date_from=lo, date_to=hi, period_given=period is not None,
                               **options)
            return _json(build_view(con, window, name, opts))

    @app.get("/api/v2/usage/summary", tags=v2, response_model=dict[str, Any],
             summary="Every meter of a period: report --view consolidated")
    def v2_summary(caller: CallerDep, contract: ContractQ = None, period: PeriodQ = None,
                   meter: MeterQ = None) -> Response:
        return view(caller, contract, period, "consolidated", meters=meter)

    @app.get("/api/v2/usage/details", tags=v2, response_model=dict[str, Any],
             summary="Counted events, paged and filtered: report --view log")
    def v2_details(caller: CallerDep, contract: ContractQ = None, period: PeriodQ = None,
                   date_from: FromQ = None, date_to: ToQ = None, meter: MeterQ = None,
                   limit: LimitQ = 100, offset: OffsetQ = 0,
                   operation: Annotated[str | None, Query(max_length=200)] = None,
                   endpoint: Annotated[str | None, Query(max_length=500)] = None,
                   status: Literal["ok", "failed"] | None = None,
                   order: Literal["asc", "desc"] = "asc") -> Response:
        return view(caller, contract, period, "log", date_from, date_to, meters=meter,
                    limit=limit, offset=offset, operation=operation, endpoint=endpoint,
                    status=status, order=order)

    @app.get("/api/v2/usage/by-period", tags=v2, response_model=dict[str, Any],
             summary="A range split by day, week or month: report --from --to --window")
    def v2_by_period(caller: CallerDep, date_from: FromQ = None, date_to: ToQ = None,
                     contract: ContractQ = None,
                     window: Literal["day", "week", "month"] = "day",
                     meter: MeterQ = None) -> Response:
        return view(caller, contract, None, "consolidated", date_from, date_to, meters=meter,
                    window=window)

    @app.get("/api/v2/usage/top-endpoints", tags=v2, response_model=dict[str, Any],
             summary="Requests per endpoint: report --view requests --group-by endpoint")
    def v2_top_endpoints(caller: CallerDep, contract: ContractQ = None,
                         period: PeriodQ = None, date_from: FromQ = None,
                         date_to: ToQ = None, meter: MeterQ = None,
                         limit: PageQ = None,
                         offset: OffsetQ = 0) -> Response:
        return view(caller, contract, period, "requests", date_from, date_to, meters=meter,
                    group_by="endpoint", limit=limit, offset=offset)

    @app.get("/api/v2/usage/breakdown", tags=v2, response_model=dict[str, Any],
             summary="Requests per dimension: report --view requests --group-by")
    def v2_breakdown(caller: CallerDep, contract: ContractQ = None, period: PeriodQ = None,
                     date_from: FromQ = None, date_to: ToQ = None, meter: MeterQ = None,
                     group_by: Literal["endpoint", "operation", "product", "user_id",
                                       "org_id", "error_code"] | None = None,
                     limit: PageQ = None,
                     offset: OffsetQ = 0) -> Response:
        return view(caller, contract, period, "requests", date_from, date_to, meters=meter,
                    group_by=group_by, limit=limit, offset=offset)

    @app.get("/api/v2/usage/dashboard-analytics", tags=v2, response_model=dict[str, Any],
             summary="Usage per hour, day or month: report --view series")
    def v2_dashboard(caller: CallerDep, contract: ContractQ = None, period: PeriodQ = None,
                     date_from: FromQ = None, date_to: ToQ = None, meter: MeterQ = None,
                     bucket: Literal["hour", "day", "month"] = "day",
                     group_by: Literal["product", "operation"] | None = None) -> Response:
        return view(caller, contract, period, "series", date_from, date_to, meters=meter,
                    bucket=bucket, group_by=group_by)

    @app.post("/api/v2/usage/check", tags=v2, response_model=dict[str, Any],
              summary="Pre-flight check: can AMOUNT more units be used? (usagectl check)")
    def v2_check(body: CheckRequest,
                 caller: Annotated[Caller, Depends(access("check"))]) -> Response:
        from usagectl.reports import status

        owner_only(caller)
        with reading() as con:
            c = chosen(con, caller, body.contract)
            return _json(status.check(con, c.id, body.meter, body.amount, caller.as_of))

    @app.get("/api/v2/usage/plan", tags=v2, response_model=dict[str, Any],
             summary="Billing period, limits, projection and plans: report --view plan")
    def v2_plan(caller: CallerDep, contract: ContractQ = None, period: PeriodQ = None,
                meter: MeterQ = None) -> Response:
        from usagectl.reports.plan import plan_view

        with reading() as con:
            window = period_window(con, caller, contract, period)
            return _json(plan_view(con, window, meter, _plans_of(alternatives, window.contract)))

    LabelQ = Annotated[str | None, Query(
        max_length=200, description="The events' extra column each item is labelled with (its "
                                    "most recent non-blank value).")]
    TokenLimitQ = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]

    def tokens(caller: Caller, contract: str | None, period: str | None, date_from: str | None,
               date_to: str | None, meter: list[str] | None, group_by: str, label: str | None,
               limit: int, offset: int) -> Response:
        if label is not None and not label.strip():
            raise ApiError(422, "validation_error", "label needs the name of an extra column of "
                           "the events (e.g. filename or title)", {"parameter": "label"})
        return view(caller, contract, period, "tokens", date_from, date_to, meters=meter,
                    group_by=group_by, label=label, limit=limit, offset=offset)

    @app.get("/api/v2/usage/tokens/files", tags=v2, response_model=dict[str, Any],
             summary="Tokens per file: report --view tokens --group-by resource_id "
                     "--label filename")
    def v2_tokens_files(caller: CallerDep, contract: ContractQ = None, period: PeriodQ = None,
                        date_from: FromQ = None, date_to: ToQ = None, meter: MeterQ = None,
                        label: LabelQ = "filename", limit: TokenLimitQ = 100,
                        offset: OffsetQ = 0) -> Response:
        return tokens(caller, contract, period, date_from, date_to, meter, "resource_id", label,
                      limit, offset)

    @app.get("/api/v2/usage/tokens/conversations", tags=v2, response_model=dict[str, Any],
             summary="Tokens per conversation: report --view tokens --group-by session_id "
                     "--label title")
    def v2_tokens_conversations(caller: CallerDep, contract: ContractQ = None,
                                period: PeriodQ = None, date_from: FromQ = None,
                                date_to: ToQ = None, meter: MeterQ = None,
                                label: LabelQ = "title", limit: TokenLimitQ = 100,
                                offset: OffsetQ = 0) -> Response:
        return tokens(caller, contract, period, date_from, date_to, meter, "session_id", label,
                      limit, offset)

    @app.get("/api/v2/usage/tokens/monthly", tags=v2, response_model=dict[str, Any],
             summary="Tokens per product and calendar month: report --view tokens per month")
    def v2_tokens_monthly(caller: CallerDep, contract: ContractQ = None,
                          period: PeriodQ = None, date_from: FromQ = None,
                          date_to: ToQ = None, meter: MeterQ = None) -> Response:
        from usagectl.reports.ranges import parse_bound
        from usagectl.reports.tokens import tokens_monthly

        with reading() as con:
            window = period_window(con, caller, contract, period)
            c = window.contract
            lo = parse_bound(date_from, c, "from")
            hi = parse_bound(date_to, c, "to")
            # One tokens view per month and period: a request may not ask for centuries.
            span = (hi or window.period.end) - (lo or window.period.start)
            if span > MONTHLY_SPAN:
                raise ApiError(422, "validation_error", "tokens/monthly covers at most "
                               f"{MONTHLY_SPAN.days} days: narrow from/to",
                               {"parameter": "from", "max_days": MONTHLY_SPAN.days})
            return _json(tokens_monthly(con, window, lo, hi, meter))

    # --- Licence API reports -------------------------------------------------------------
    lic = ["Licence API reports"]

    @app.get("/api/licence/v1/reports/consolidated-summary", tags=lic,
             response_model=dict[str, Any],
             summary="Users, datasets and indicators of a period: report --view consolidated")
    def licence_summary(caller: CallerDep, contract: ContractQ = None, period: PeriodQ = None,
                        date_from: FromQ = None, date_to: ToQ = None,
                        meter: MeterQ = None) -> Response:
        return view(caller, contract, period, "consolidated", date_from, date_to, meters=meter)

    @app.get("/api/licence/v1/reports/user-detail-summary", tags=lic,
             response_model=dict[str, Any],
             summary="Which datasets and indicators each user and organisation accessed: "
                     "report --view users --detail")
    def licence_user_detail(caller: CallerDep, contract: ContractQ = None,
                            period: PeriodQ = None, date_from: FromQ = None,
                            date_to: ToQ = None, meter: MeterQ = None,
                            limit: PageQ = None,
                            offset: OffsetQ = 0) -> Response:
        return view(caller, contract, period, "users", date_from, date_to, meters=meter,
                    detail=True, limit=limit, offset=offset)

    # The consumption log is the v2 details route under the licence API's path: one handler.
    app.get("/api/licence/v1/reports/consumption-log", tags=lic,
            response_model=dict[str, Any], operation_id="licence_consumption_log",
            summary="Counted calls, paged and filtered: report --view log")(v2_details)

    return app


def _what_if(path: str | None) -> dict[str, Contract] | None:
    if not path:
        return None
    from usagectl.contracts import load_contracts_file

    return {c.id: c for c in load_contracts_file(path)}


def _alternatives(path: str | None) -> list[Contract] | None:
    """The plans of ``serve --alternatives FILE`` (None without it): every owner's, each
    compared only with its own owner's contracts (:func:`_plans_of`)."""
    if not path:
        return None
    from usagectl.contracts import load_contracts_file

    return load_contracts_file(path)


def _plans_of(alternatives: list[Contract] | None, current: Contract) -> list[Contract] | None:
    """The alternatives the plan route compares with ``current``: the file's plans of the same
    owner, the current plan itself left out (as ``report --alternatives`` leaves it out). An
    owner never sees another owner's plans."""
    if alternatives is None:
        return None
    return [a for a in alternatives if a.owner == current.owner and a.id != current.id]
