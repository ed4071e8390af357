"""The studio's HTTP side: a Starlette app over a :class:`~transcribe.studio.state.Studio`.

Safety, in one place:

- every ``/api`` request needs the server's token: the ``X-Studio-Token`` header (the page sends
  it; a form or link from another site cannot set a header), or for the GETs an ``<audio>`` or
  download link makes, ``?token=``; compared in constant time;
- the page (``/``) carries the token; a page of another origin cannot read it (no CORS headers),
  and the ``Host`` header must name this server (so a DNS-rebound name gets 400); on a host other
  than loopback the page itself needs ``?token=`` (the URL the command prints);
- state-changing requests from another ``Origin`` are refused even with the token;
- uploads go to the job's folder as they arrive, refused (413) past ``max_upload_mb``, then checked
  by decoding; a job's exception ends that job only.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .state import DECODE_KEYS, OUTPUTS, Studio, UploadRefused, notes_json

STATIC = Path(__file__).parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = ("GET", "HEAD")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


def is_loopback(host: str) -> bool:
    """The default, this-machine-only addresses; any other ``--host`` warns and needs the token for the page."""
    return host in LOOPBACK


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def parse_settings(studio: Studio, text: str | None):
    """Decoder settings from a JSON object (the page's sliders) -> DecodeConfig (ValueError if bad)."""
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"settings are not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError("settings must be a JSON object")
    return studio.decode_config({k: v for k, v in data.items() if k in DECODE_KEYS}), bool(data.get("midi_tempo"))


def score_info(musicxml: Path) -> dict:
    """Tempo (BPM), key and time signature as the MusicXML writes them."""
    import xml.etree.ElementTree as ET

    root = ET.parse(musicxml).getroot()
    fifths, mode = root.findtext(".//key/fifths"), root.findtext(".//key/mode") or "major"
    beats, beat_type = root.findtext(".//time/beats"), root.findtext(".//time/beat-type")
    tempo = root.findtext(".//metronome/per-minute") or (root.find(".//sound[@tempo]").get("tempo")
                                                          if root.find(".//sound[@tempo]") is not None else None)
    key = None
    if fifths is not None:
        majors = ["Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#"]
        minors = ["Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#", "G#", "D#", "A#"]
        i = int(fifths) + 7
        key = f"{(minors if mode == 'minor' else majors)[i]} {mode}" if 0 <= i < 15 else None
    return {"tempo": float(tempo) if tempo else None, "key": key,
            "time_signature": f"{beats}/{beat_type}" if beats and beat_type else None}


def render_svg(musicxml: Path) -> list[str]:
    """The score engraved by verovio: one SVG per page."""
    import verovio

    tk = verovio.toolkit(False)
    # the wheel's fonts: the default resource path is set per thread only in the importing one
    tk.setResourcePath(str(Path(verovio.__file__).parent / "data"))
    # its text font inside the SVG (tempo marks), nothing fetched: verovio 4-5 call it svgFontFaceInclude, 6
    # smuflTextFont (an option a version does not know is an error printed on every page)
    available = tk.getAvailableOptions()  # a dict in verovio 6's binding, JSON text in older ones
    available = json.loads(available) if isinstance(available, str) else available
    known = {name for group in available.get("groups", {}).values() for name in group.get("options", {})}
    font = {"smuflTextFont": "embedded"} if "smuflTextFont" in known else {"svgFontFaceInclude": True}
    tk.setOptions({"pageWidth": 2100, "pageHeight": 2970, "scale": 40, "adjustPageHeight": True,
                   "footer": "none", "header": "auto", **font})
    if not tk.loadData(musicxml.read_text(encoding="utf-8")):
        raise ValueError("verovio could not read the MusicXML")
    return [tk.renderToSVG(i + 1) for i in range(tk.getPageCount())]


def create_app(studio: Studio, token: str, host: str = "127.0.0.1", max_upload_bytes: int = 300 << 20) -> Starlette:
    """The studio's ASGI app."""
    index_html = (STATIC / "index.html").read_text(encoding="utf-8")
    page_needs_token = not is_loopback(host)

    def token_ok(request: Request) -> bool:
        given = request.headers.get("x-studio-token")
        if given is None and request.method in SAFE_METHODS:
            given = request.query_params.get("token")
        return given is not None and secrets.compare_digest(given.encode(), token.encode())

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None or request.method in SAFE_METHODS:
            return True
        return origin.split("://", 1)[-1] == request.headers.get("host", "")

    def guarded(handler):
        async def wrapped(request: Request) -> Response:
            if not token_ok(request):
                return error("this request needs the studio's token (open the page the command printed)", 403)
            if not same_origin(request):
                return error("requests from another site are refused", 403)
            try:
                return await handler(request)
            except (ValueError, KeyError) as err:
                return error(str(err).strip("'\""), 400)
            except Exception as err:  # noqa: BLE001 - e.g. a missing optional package: say so, keep serving
                return error(f"{type(err).__name__}: {err}", 500)
        return wrapped

    def job_of(request: Request):
        job = studio.get(request.path_params["job"])
        if job is None:
            raise KeyError("no such recording (it may have expired)")
        return job

    async def index(request: Request) -> Response:
        if page_needs_token and not token_ok(request):
            return HTMLResponse("<p>Open the address with ?token=... that <code>transcribe studio</code> printed.</p>",
                                status_code=403)
        html = index_html.replace("__STUDIO_TOKEN__", token)
        return HTMLResponse(html, headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP,
                                           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    async def config(request: Request) -> Response:
        return JSONResponse({"decode": studio.default_decode(), "max_upload_mb": max_upload_bytes / (1 << 20),
                             "max_minutes": studio.cfg.max_minutes, "formats": list(OUTPUTS),
                             "frame_rate": studio.frame_rate, "sonify": studio.sonify is not None,
                             "sonify_reason": studio.sonify_reason})

    async def stats(request: Request) -> Response:
        return JSONResponse(studio.stats())

    async def upload(request: Request) -> Response:
        name = request.query_params.get("name") or request.headers.get("x-filename") or "recording"
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_upload_bytes:
            return error(f"{name}: {int(length) / (1 << 20):.0f} MB is more than the studio takes "
                         f"({max_upload_bytes / (1 << 20):.0f} MB, --max-upload-mb)", 413)
        try:
            job = studio.new_job(name)
        except UploadRefused as err:
            return error(str(err), err.status)
        size = 0
        try:
            with open(job.audio, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_upload_bytes:
                        raise UploadRefused(f"{job.name}: more than the studio takes "
                                            f"({max_upload_bytes / (1 << 20):.0f} MB, --max-upload-mb)", 413)
                    f.write(chunk)
            await run_in_threadpool(studio.check_upload, job)
        except UploadRefused as err:
            studio.remove(job)
            return error(str(err), err.status)
        except Exception as err:  # noqa: BLE001 - a broken upload (client gone) ends this upload only
            studio.remove(job)
            return error(f"{job.name}: the upload did not arrive whole ({type(err).__name__})", 400)
        studio.submit(job)
        return JSONResponse(job.to_json(), status_code=201)

    async def jobs(request: Request) -> Response:
        return JSONResponse([j.to_json() for j in list(studio.jobs.values())])

    async def job_status(request: Request) -> Response:
        return JSONResponse(job_of(request).to_json())

    async def cancel(request: Request) -> Response:
        job = job_of(request)
        job.cancel.set()
        if job.status == "queued":
            job.status = "cancelled"
        return JSONResponse(job.to_json())

    async def delete(request: Request) -> Response:
        studio.remove(job_of(request))
        return JSONResponse({"deleted": True})

    async def decode(request: Request) -> Response:
        import time

        job = job_of(request)
        body = (await request.body()).decode("utf-8", "replace")
        cfg, _ = parse_settings(studio, body)
        t0 = time.perf_counter()
        res = await run_in_threadpool(studio.result, job, cfg)
        ms = (time.perf_counter() - t0) * 1000
        return JSONResponse({"count": len(res.notes), "decode_ms": round(ms, 2), "seconds": job.seconds,
                             "network_runs": studio.network_runs, **notes_json(res.notes, res.pedal)})

    async def audio(request: Request) -> Response:
        job = job_of(request)
        if not job.audio.exists():
            raise KeyError("the recording is gone")
        return FileResponse(job.audio, media_type=_media_type(job.audio.suffix),
                            headers={"Cache-Control": "no-store"})

    async def download(request: Request) -> Response:
        job = job_of(request)
        fmt = request.path_params["fmt"]
        cfg, midi_tempo = parse_settings(studio, request.query_params.get("settings"))
        out = await run_in_threadpool(studio.output, job, cfg, fmt, midi_tempo)
        kind = _media_type(out.suffix) if fmt == "sonified" else _DOWNLOAD_TYPES.get(fmt, "application/octet-stream")
        return FileResponse(out, filename=out.name, media_type=kind)

    async def score(request: Request) -> Response:
        job = job_of(request)
        cfg, _ = parse_settings(studio, request.query_params.get("settings"))
        xml = await run_in_threadpool(studio.output, job, cfg, "musicxml")
        svg = await run_in_threadpool(render_svg, xml)
        return JSONResponse({"pages": svg, **score_info(xml)})

    async def beats(request: Request) -> Response:
        job = job_of(request)
        cfg, _ = parse_settings(studio, request.query_params.get("settings"))
        return JSONResponse(await run_in_threadpool(studio.beats, job, cfg))

    async def janitor() -> None:
        while True:
            await asyncio.sleep(30)
            await run_in_threadpool(studio.expire)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(janitor())
        try:
            yield
        finally:
            task.cancel()

    hosts = ["127.0.0.1", "localhost", "::1", "[::1]"] + ([host] if host not in LOOPBACK else [])
    if host in ("0.0.0.0", "::", ""):
        hosts = ["*"]  # any name reaches it; the page and the API need the token
    routes = [
        Route("/", index),
        Route("/api/config", guarded(config)),
        Route("/api/stats", guarded(stats)),
        Route("/api/upload", guarded(upload), methods=["POST"]),
        Route("/api/jobs", guarded(jobs)),
        Route("/api/jobs/{job}", guarded(job_status)),
        Route("/api/jobs/{job}", guarded(delete), methods=["DELETE"]),
        Route("/api/jobs/{job}/cancel", guarded(cancel), methods=["POST"]),
        Route("/api/jobs/{job}/decode", guarded(decode), methods=["POST"]),
        Route("/api/jobs/{job}/audio", guarded(audio)),
        Route("/api/jobs/{job}/download/{fmt}", guarded(download)),
        Route("/api/jobs/{job}/score", guarded(score)),
        Route("/api/jobs/{job}/beats", guarded(beats)),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan,
                     middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])


_DOWNLOAD_TYPES = {"mid": "audio/midi", "musicxml": "application/vnd.recordare.musicxml+xml", "csv": "text/csv",
                   "json": "application/json", "png": "image/png"}


def _media_type(suffix: str) -> str:
    return {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/ogg", ".mp3": "audio/mpeg",
            ".m4a": "audio/mp4", ".aac": "audio/aac", ".aif": "audio/aiff", ".aiff": "audio/aiff"}.get(
                suffix, "application/octet-stream")
