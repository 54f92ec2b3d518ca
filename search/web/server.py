"""`imgcap serve`: the web gallery, a Starlette app over the Library (search/web/library.py).

Pages (Jinja2, autoescaped) and a JSON API under /api with the CLI's `--json` fields. Security,
because this serves a person's photo library:
- files only by database id (`/thumb/<id>`, `/preview/<id>`, `/original/<id>`), never by a path
  from the URL, and only files inside the database's roots (Library.file checks the row); a
  video's still only at one of its stored keyframes (`/preview/<id>?at=MS`), so a client cannot
  make the server decode (and cache) any other moment; static files from a fixed list; anything
  else is a 404 (no listings);
- the Host header must name this machine (localhost, an IP literal, the bound host, or this
  machine's name when bound to every interface): a DNS-rebinding page has some other name;
- the one state-changing request (caption edit) is a JSON POST whose Origin, when sent, is this
  server (browsers always send it on cross-site POSTs; scripts such as curl send none);
- a Content-Security-Policy without inline scripts, on top of escaping every string;
- bounded input: ids past SQLite's integers name no photo (404), a request body is at most
  MAX_BODY bytes of JSON, a filter at most filters.MAX_VALUES values (400);
- errors are logged here; the client gets a short message, never a traceback, and a 5xx
  never names a path or quotes an exception (the server's log has them).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from indexer.config import Settings
from indexer.errors import BadImageError, ImgcapError, StoreError, UsageError
from indexer.store.queries import FileFilter
from search import filters
from search.dates import date_range_warning
from search.display import shown_strings
from search.language import check_lang
from search.query import MODES, SearchRequest, filters_label
from search.web import originals, pages
from search.web.library import Library
from search.web.thumbnails import PLACEHOLDER_SVG, PREVIEW_SIZE, THUMB_SIZE

log = logging.getLogger("imgcap.serve")

PER_PAGE = 48
# A caption edit's body: captions.MAX_CHARS characters, each at most 12 bytes as a JSON escape
# (one emoji sent as the pair "\ud83d\ude00"), fits with room to spare.
MAX_BODY = 64 * 1024
SIMILAR_ON_PAGE = 12
SERVER_ERROR = "Something went wrong on the server (see its log)."
STORE_ERROR = "The photo index cannot be read right now (see the server's log)."
LOOPBACK = ("127.0.0.1", "localhost", "::1")
STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self';"
        b" object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def is_loopback(host: str) -> bool:
    return host in LOOPBACK


def allowed_host(header: str, bound: str) -> bool:
    """Whether a request's Host header names this server (the DNS-rebinding check)."""
    name = header.strip()
    if name.startswith("["):  # [::1]:8765
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    name = name.lower().rstrip(".")
    if not name:
        return False
    if name in ("localhost", bound.lower()):
        return True
    try:
        ipaddress.ip_address(name)
        return True  # an IP literal cannot be rebound to another address
    except ValueError:
        pass
    if bound in ("0.0.0.0", "::", ""):
        return name in {socket.gethostname().lower(), socket.getfqdn().lower()}
    return False


class _Guard:
    """ASGI middleware: Host check on every request, security headers on every response."""

    def __init__(self, app, bound: str):
        self.app, self.bound = app, bound

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if not allowed_host(host, self.bound):
            log.warning("refused a request for Host %r (not this server)", host)
            response = Response("Host not allowed\n", status_code=400, media_type="text/plain")
            return await response(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}  # a route's own policy wins (originals)
                message["headers"] = headers + [h for h in SECURITY_HEADERS if h[0] not in have]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ------------------------------------------------------------------------------ request parsing
def _int(value: str | None, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} must be a whole number") from None


def search_params(request: Request) -> QueryParams:
    """A search URL's parameters. A folder whose name is not UTF-8 (`caf%E9`, as /browse and
    the cards link it) keeps its bytes as surrogate escapes, the form the index and the CLI
    give such names; every other value reads as Starlette reads it (U+FFFD for bad bytes)."""
    raw = request.scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="surrogateescape")
    return QueryParams(
        [
            (k, v if k == "in" else v.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            for k, v in pairs
        ]
    )


def _text(params, name: str) -> str | None:
    """A query parameter's text; an empty field counts as not given."""
    return (params.get(name) or "").strip() or None


def search_request(params) -> SearchRequest | None:
    """The CLI's search options from query parameters (None when nothing was asked). Filters
    without words are a search too, as on the command line: their photos, newest first."""
    text = _text(params, "q")
    mode = params.get("mode") or "hybrid"
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
    min_score = params.get("min_score") or None
    try:
        min_score = None if min_score is None else float(min_score)
    except ValueError:
        raise UsageError("min score must be a number such as 0.25") from None
    flt = query_filter(params)
    if text is None and not flt.active:
        return None
    return SearchRequest(
        text=text,
        negative=_text(params, "not"),
        mode=mode,
        filters=flt,
        min_score=min_score,
        understand=params.get("literal") != "1",  # as the CLI: dates, places... read from q
        all_files=params.get("all") == "1",  # as --all: copies and look-alikes each a photo
        lang=check_lang(params.get("lang")),  # as --lang: auto, en, de, ...
    )


def query_filter(params) -> FileFilter:
    """The filters of a gallery URL: in, after, before, camera, tag, place (as the CLI's
    options; `tag` may repeat, and one value may list several: "Grandma, 2019 trip")."""
    folder = _text(params, "in")
    if folder is not None:
        # A server has no working folder of the person's to resolve a relative one against.
        folder = os.path.expanduser(folder)
        if not os.path.isabs(folder):
            raise UsageError("the folder filter needs an absolute path, such as /home/me/Photos")
    return filters.file_filter(
        folder,
        _text(params, "after"),
        _text(params, "before"),
        _text(params, "camera"),
        tags=[t for value in params.getlist("tag") for t in value.split(",")],
        place=params.get("place"),
        prefix="",
    )


def _per_page(params, default: int, most: int) -> int:
    return min(max(_int(params.get("n"), "n", default), 1), most)


# ----------------------------------------------------------------------------------- pages
def _library(request: Request) -> Library:
    return request.app.state.library


def search_page(request: Request) -> Response:
    lib = _library(request)
    p = search_params(request)
    partial = p.get("partial") == "1"
    ctx: dict[str, Any] = {"params": p, "modes": MODES, "hits": [], "page": None}
    ctx["indexing_since"] = lib.indexing_since()
    try:
        page_no = _int(p.get("page"), "page", 1)
        # Photos per page (n): a page stays small however deep the library; more load on
        # scroll (app.js) or through the "More photos" link.
        per_page = _per_page(p, PER_PAGE, 200)
        like = p.get("like")
        if like:
            ctx["like"] = lib.photo(_int(like, "like", 0))
            page = lib.similar(ctx["like"]["id"], page_no, per_page, query_filter(p))
        elif (req := search_request(p)) is None:
            # No words, no filter: the library itself, newest first, by month, with its ways in.
            if not partial:
                lib.check()  # the landing page says when there is nothing to show yet
                ctx["facets"] = lib.facets()
            page, before = lib.timeline(page_no, per_page)
            ctx["timeline"] = True
            if partial and before is not None:  # appended below the page before: its month
                ctx["previous_month"] = pages.month_of(before)[0]  # goes on, no new heading
        else:
            page = lib.search(req, page_no, per_page)
            ctx["warning"] = date_range_warning(req.filters.after, req.filters.before)
            ctx["filters_label"] = filters_label(req.filters)
            ctx["browsing"] = req.text is None
            ctx["place_filter"] = bool(req.filters.place)
            ctx["words"] = _searched_words(page.hits, req.text)
        ctx["page"] = page
        ctx["hits"] = page.hits if page else []
        if page and page.understood:
            args = [(k, v) for k, v in p.multi_items() if k not in ("page", "partial")]
            ctx["literal_query"] = urlencode([*args, ("literal", "1")])
        if page and page.has_more:
            args = [(k, v) for k, v in p.multi_items() if k not in ("page", "partial")]
            ctx["next_url"] = "/?" + urlencode([*args, ("page", page.page + 1)])
    except (UsageError, LookupError) as e:
        if partial:
            return HTMLResponse("", status_code=400)
        ctx["error"] = str(e) if isinstance(e, UsageError) else "No such photo."
    except StoreError as e:
        if partial:
            return HTMLResponse("", status_code=503)
        ctx["store_error"] = str(e)
    if partial:
        headers = {"X-Has-More": "1" if ctx["page"] and ctx["page"].has_more else "0"}
        fragment = {k: ctx[k] for k in CARD_CONTEXT if k in ctx}
        return HTMLResponse(pages.render("_cards.html", **fragment), headers=headers)
    return HTMLResponse(pages.render("search.html", **ctx))


# What a page of cards needs besides its hits (the next page's fragment gets the same).
CARD_CONTEXT = ("hits", "timeline", "previous_month", "words", "place_filter")


def _searched_words(hits: list[dict[str, Any]], text: str | None) -> str | None:
    """The words the picture and caption were compared with: the query less what was read as
    filters ("dog" of "dog in Paris 2019")."""
    understood = hits[0].get("understood") if hits else None
    return understood.get("text") if understood else text


def browse_page(request: Request) -> Response:
    try:
        facets = _library(request).facets()
    except StoreError as e:
        return HTMLResponse(pages.render("browse.html", facets=None, store_error=str(e)))
    return HTMLResponse(pages.render("browse.html", facets=facets, store_error=None))


def favicon(request: Request) -> Response:
    """The site's icon, for browsers that ask /favicon.ico without reading the page's link."""
    return static_file_at(request, "favicon.svg")


def photo_page(request: Request) -> Response:
    lib = _library(request)
    file_id = request.path_params["id"]
    try:
        photo = lib.photo(file_id)
    except LookupError:
        raise HTTPException(404) from None
    similar, error = [], None
    try:
        similar = lib.similar(file_id, 1, SIMILAR_ON_PAGE).hits
    except ImgcapError as e:  # no vectors for this model: the page still shows the photo
        error = str(e)
    video = _video(lib, photo, request.query_params.get("t"))
    return HTMLResponse(
        pages.render("photo.html", photo=photo, similar=similar, error=error, video=video)
    )


def _video(lib: Library, photo: dict[str, Any], t: str | None) -> dict[str, Any] | None:
    """What the photo page needs to show a video (None for a photo): where to start (`t`, the
    moment a search matched, in seconds), which keyframe that is, and whether the browser can
    play it (else the page shows the still and says why)."""
    frames = photo.get("frames")
    if not frames:
        return None
    try:
        start = max(0.0, float(t)) if t else 0.0
    except ValueError:
        start = 0.0
    if start != start or start == float("inf"):  # nan, inf: no moment
        start = 0.0
    try:
        playback = originals.playback(lib.file(photo["id"])["real_path"])
    except LookupError:
        playback = originals.Playback(False, "the file is not served")
    matched = max((f["at_seconds"] for f in frames if f["at_seconds"] <= start), default=None)
    still = pages.thumb_url(photo, "preview")  # that moment's still (else the poster)
    if matched is not None:
        still += f"&at={round(matched * 1000)}"
    return {"start": round(start, 3), "matched": matched, "playback": playback, "still": still}


def status_page(request: Request) -> Response:
    try:
        info = _library(request).status()
    except StoreError as e:
        return HTMLResponse(pages.render("status.html", info=None, store_error=str(e)))
    return HTMLResponse(pages.render("status.html", info=info, store_error=None))


# ----------------------------------------------------------------------------------- files
def thumb(request: Request) -> Response:
    return _image(request, THUMB_SIZE)


def preview(request: Request) -> Response:
    return _image(request, PREVIEW_SIZE)


def _image(request: Request, size: int) -> Response:
    lib = _library(request)
    try:
        f = lib.file(request.path_params["id"])
    except LookupError:
        raise HTTPException(404) from None
    source = f["real_path"]
    at_ms = None  # ?at=MS: a video's still at that keyframe
    if request.query_params.get("at") is not None:
        at_ms = _int(request.query_params.get("at"), "at", 0)
        if not lib.is_keyframe(f["content_hash"], at_ms):
            raise HTTPException(404)
    expect = (f["size"], f["mtime_ns"])
    t = lib.thumbnails.get(f["content_hash"], source, size, expect=expect, at_ms=at_ms)
    versioned = request.query_params.get("v") == f["content_hash"][:12]
    cache = "private, max-age=31536000, immutable" if versioned else "private, max-age=300"
    if t.path is not None:
        return FileResponse(t.path, media_type="image/jpeg", headers={"Cache-Control": cache})
    if t.data is not None:
        return Response(t.data, media_type="image/jpeg", headers={"Cache-Control": cache})
    log.warning("no thumbnail for file %s: %s", f["id"], t.reason)
    return Response(
        PLACEHOLDER_SVG,
        media_type="image/svg+xml",
        # Short: the file may be readable again later (a drive mounted, a copy finished).
        headers={"Cache-Control": "no-store", "X-Imgcap-Placeholder": "1"},
    )


def original(request: Request) -> Response:
    try:
        f = _library(request).file(request.path_params["id"])
    except LookupError:
        raise HTTPException(404) from None
    if not os.path.isfile(f["real_path"]):
        message = "The file is missing: not on disk now (deleted, moved, or its drive unmounted)."
        return _error(request, 404, message)
    # Sandboxed: an image format with scripts (SVG is never indexed, but be sure) cannot run.
    headers = {"Content-Security-Policy": "sandbox", "Cache-Control": "private, no-cache"}
    # By the indexed name (what the row says it is), never a type guessed from the bytes.
    kind = originals.media_type(f["path"])
    if kind is not None:  # shown as it is; a video seeks through Range requests
        return FileResponse(f["real_path"], media_type=kind, headers=headers)
    try:
        data = request.app.state.converter.jpeg(f["real_path"])
    except BadImageError as e:
        log.warning("cannot convert file %s for the browser: %s", f["id"], e)
        return _error(request, 422, f"This file cannot be shown in a browser: {e.reason}.")
    return Response(data, media_type="image/jpeg", headers=headers)


def static_file(request: Request) -> Response:
    return static_file_at(request, request.path_params["name"])


def static_file_at(request: Request, name: str) -> Response:
    path = request.app.state.static.get(name)
    if path is None:
        raise HTTPException(404)
    return FileResponse(
        path,
        media_type=STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=300"},
    )


# -------------------------------------------------------------------------------- JSON API
def api_search(request: Request) -> Response:
    lib = _library(request)
    p = search_params(request)
    page_no = _int(p.get("page"), "page", 1)
    per_page = _per_page(p, PER_PAGE, 500)
    if p.get("like"):
        page = lib.similar(_int(p.get("like"), "like", 0), page_no, per_page, query_filter(p))
    else:
        req = search_request(p)
        if req is None:
            raise UsageError(
                "empty query: pass q=WORDS, like=PHOTO_ID, or a filter"
                " (in, tag, place, camera, after, before)"
            )
        page = lib.search(req, page_no, per_page)
    return ApiJson(
        {
            "page": page.page,
            "per_page": per_page,
            "has_more": page.has_more,
            "language": page.language,  # the query's language and text tower (None: --like)
            "text_tower": page.text_tower,
            "hits": page.hits,
        }
    )


class ApiJson(JSONResponse):
    """The API's JSON, valid UTF-8: bytes of a file name that are not UTF-8 shown as `\\xe9`."""

    def render(self, content: Any) -> bytes:
        return super().render(shown_strings(content))


def api_photo(request: Request) -> Response:
    return ApiJson(pages.photo_json(_library(request).photo(request.path_params["id"])))


def api_similar(request: Request) -> Response:
    p = request.query_params
    per_page = _per_page(p, SIMILAR_ON_PAGE, 500)
    page_no = _int(p.get("page"), "page", 1)
    page = _library(request).similar(request.path_params["id"], page_no, per_page)
    return ApiJson({"page": page.page, "has_more": page.has_more, "hits": page.hits})


async def api_caption(request: Request) -> Response:
    _same_origin(request)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _json_error(415, 'send the caption as JSON: {"caption": "..."}')
    body = await _json_object(request)
    if "caption" not in body:
        raise UsageError('send {"caption": "..."} (or null to restore the generated caption)')
    text = body["caption"]
    if text is not None and not isinstance(text, str):
        raise UsageError("caption must be a string (or null to restore the generated caption)")
    if text is not None and not _is_unicode(text):
        raise UsageError("caption must be text: it holds a lone surrogate (\\ud800-\\udfff)")
    lib = _library(request)
    photo = await run_in_threadpool(lib.set_caption, request.path_params["id"], text)
    return ApiJson(pages.photo_json(photo))


def api_status(request: Request) -> Response:
    return ApiJson(_library(request).status())


ROUTES = [
    Route("/", search_page),
    Route("/photo/{id:int}", photo_page),
    Route("/status", status_page),
    Route("/browse", browse_page),
    Route("/favicon.ico", favicon),
    Route("/thumb/{id:int}", thumb),
    Route("/preview/{id:int}", preview),
    Route("/original/{id:int}", original),
    Route("/static/{name:str}", static_file),
    Route("/api/search", api_search),
    Route("/api/photo/{id:int}", api_photo),
    Route("/api/similar/{id:int}", api_similar),
    Route("/api/photo/{id:int}/caption", api_caption, methods=["POST"]),
    Route("/api/status", api_status),
]


# ----------------------------------------------------------------------------------- the app
def create_app(
    settings: Settings, host: str = "127.0.0.1", model: str | None = None, encoder_loader=None
) -> Starlette:
    """The ASGI app serving `settings.db_path`. `host` is the bound host (for the Host check)."""
    handlers = {
        HTTPException: _http_error,
        ImgcapError: _imgcap_error,
        LookupError: _not_found,
        Exception: _server_error,
    }
    app = Starlette(routes=ROUTES, exception_handlers=handlers)
    app.state.library = Library(settings, model=model, encoder_loader=encoder_loader)
    app.state.converter = originals.Converter(settings.max_pixels_for(1))
    app.state.static = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in STATIC_TYPES}
    app.add_middleware(_Guard, bound=host)
    return app


async def _json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object: 413 past MAX_BODY bytes (read no further), 400
    (UsageError) for anything but a JSON object, however deeply nested."""
    too_large = HTTPException(413, f"the body is larger than {MAX_BODY // 1024} KiB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise too_large
    try:
        value = json.loads(bytes(body))
    except RecursionError:  # json recurses once per nested array or object
        raise UsageError("the body is not valid JSON (nested too deeply)") from None
    except ValueError:
        raise UsageError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise UsageError('the body must be a JSON object, such as {"caption": "..."}')
    return value


def _is_unicode(text: str) -> bool:
    """Whether `text` can be stored as UTF-8 (JSON's \\ud800 escapes decode to lone
    surrogates, which are no characters)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _same_origin(request: Request) -> None:
    """A cross-site page must not change anything: its browser sends an Origin naming it."""
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin.rstrip("/") != own:
            raise HTTPException(403, "cross-origin request refused")
    elif site not in (None, "same-origin", "none"):
        raise HTTPException(403, "cross-origin request refused")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _json_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return _json_error(status, message)
    return HTMLResponse(pages.render("error.html", status=status, message=message), status)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    messages = {404: "Not found.", 405: "Method not allowed."}
    message = exc.detail if exc.status_code == 403 else messages.get(exc.status_code, exc.detail)
    return _error(request, exc.status_code, message)


async def _imgcap_error(request: Request, exc: ImgcapError) -> Response:
    if isinstance(exc, UsageError):
        return _error(request, 400, str(exc))
    # The message names the database's path and may quote SQLite: for the log, not the client.
    log.error("%s: %s", request.url.path, exc)
    status, message = (503, STORE_ERROR) if isinstance(exc, StoreError) else (500, SERVER_ERROR)
    return _error(request, status, message)


async def _not_found(request: Request, exc: LookupError) -> Response:
    return _error(request, 404, "No such photo.")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("error serving %s", request.url.path, exc_info=exc)
    return _error(request, 500, SERVER_ERROR)


# ------------------------------------------------------------------------------------ running
def bind(host: str, port: int) -> socket.socket:
    """The listening socket (bound before the server starts, so the URL printed has the real
    port even for --port 0, and a busy port is a clear error, not a uvicorn traceback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a response goes out as headers then body, and with Nagle
    # the body waits for the client's delayed ACK of the headers (a flat 40 ms per request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_for(host: str, port: int) -> str:
    # A wildcard bind is reached through loopback from this machine.
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/"


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = False,
    model: str | None = None,
    say=print,
    warn=print,
) -> None:
    """Run the gallery until Ctrl-C (or SIGTERM); `say` gets the startup line, `warn` warnings."""
    import uvicorn

    logging.basicConfig(level=logging.WARNING, format="imgcap serve: %(levelname)s %(message)s")
    if not is_loopback(host):
        warn(
            f"Warning: serving on {host}: anyone who can reach this machine can see and edit"
            " your photo library (imgcap serve has no authentication)"
        )
    app = create_app(settings, host=host, model=model)
    if not Path(settings.db_path).is_file():
        warn(f"Warning: no database at {settings.db_path} yet; the page says how to make one")
    else:
        try:
            app.state.library.check()  # a --model this index lacks is an error now, not per page
        except StoreError as e:
            warn(f"Warning: {e}")
    sock = bind(host, port)
    url = url_for(host, sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    # uvicorn finishes the requests in flight on SIGINT/SIGTERM, then re-raises the signal to
    # the handler that was there before it: Ctrl-C is how a server is stopped, so both end in a
    # clean exit 0 here instead of "Interrupted." (130) or a death by signal.
    previous = signal.signal(signal.SIGTERM, _stop)
    # uvicorn installs its handlers only once its loop runs: a Ctrl-C right after the startup
    # line must stop the server too, also when this process began with SIGINT ignored (a
    # script's background job inherits that), where it would otherwise be lost and run on.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        say(f"Serving {settings.db_path} at {url} (Ctrl-C to stop)")
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        sock.close()
    say("Stopped.")


class _Stopped(Exception):
    pass


def _stop(signum, frame) -> None:
    raise _Stopped
