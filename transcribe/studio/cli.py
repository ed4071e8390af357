"""``transcribe studio [options]``: start the studio's server and open the browser on it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The ``transcribe studio`` command line (defaults: ``conf/studio/default.yaml``)."""
    p = argparse.ArgumentParser(
        prog="transcribe studio",
        description="A local web page for transcription: drop recordings on it, see and hear the notes, tune the "
        "decoder with sliders, read the score, and download MIDI, MusicXML, CSV, JSON and the piano-roll PNG "
        "(each what the transcribe command writes with the same settings). Everything runs on this machine.")
    p.add_argument("--host", default=None,
                   help="address to listen on (default 127.0.0.1, this machine only); any other needs the token, "
                   "which the printed address carries")
    p.add_argument("--port", type=int, default=None, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--token", default=None,
                   help="the secret that pages and requests must show (default: a new random one each start)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; just print the address")
    p.add_argument("--max-upload-mb", type=float, default=None, metavar="MB",
                   help="largest upload accepted (default 300)")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="recordings transcribed at the same time; more wait in a bounded queue (default 1)")
    p.add_argument("--queue", type=int, default=None,
                   help="recordings that may wait for their turn; more uploads are refused until some finish "
                   "(default 16)")
    p.add_argument("-m", "--model", type=Path, default=None,
                   help="checkpoint to use (default: the model shipped with the package)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the studio until Ctrl-C; the exit status."""
    args = build_parser().parse_args(argv)
    from ..deps import MissingDependency, require

    try:
        for module in ("starlette", "uvicorn", "verovio"):
            require(module, "transcribe studio", extra="studio")
    except MissingDependency as err:
        print(f"transcribe studio: {err}", file=sys.stderr)
        return EXIT_USAGE

    from dataclasses import replace

    from .state import StudioConfig

    try:
        cfg = StudioConfig.default()
        cfg = replace(cfg, **{k: v for k, v in (("host", args.host), ("port", args.port), ("jobs", args.jobs), ("queue", args.queue),
                                                 ("max_upload_mb", args.max_upload_mb)) if v is not None})
    except ValueError as err:
        print(f"transcribe studio: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return serve(cfg, args.token, str(args.model) if args.model else None, open_browser=not args.no_browser)


def serve(cfg, token: str | None = None, checkpoint: str | None = None, open_browser: bool = False) -> int:
    """Serve until stopped (Ctrl-C, SIGTERM); the work folder is deleted on the way out."""
    import secrets
    import socket

    import uvicorn

    from ..checkpoint import CheckpointError
    from .server import create_app, is_loopback
    from .state import Studio

    token = token or secrets.token_urlsafe(24)
    try:
        studio = Studio(cfg, checkpoint)
    except (CheckpointError, ValueError) as err:
        print(f"transcribe studio: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.host, int(cfg.port)))
    except OSError as err:
        studio.close()
        print(f"transcribe studio: error: cannot listen on {cfg.host}:{cfg.port}: {err.strerror or err}",
              file=sys.stderr)
        return EXIT_USAGE
    port = sock.getsockname()[1]
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    url = f"http://{shown}:{port}/"
    if not is_loopback(cfg.host):
        url += f"?token={token}"
        print(f"transcribe studio: warning: listening on {cfg.host}, not only this machine: anyone who can reach "
              "it and has the address below (with its token) can upload recordings", file=sys.stderr)
    app = create_app(studio, token, cfg.host, int(cfg.max_upload_mb * (1 << 20)))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3))
    print(f"transcribe studio: open {url}  (Ctrl-C stops it; recordings are kept in {studio.work} until then)",
          flush=True)
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    import signal

    def stop(signum, frame):  # uvicorn stops gracefully on the signal, then raises it again: end here
        raise SystemExit(128 + signum)

    # SIGTERM everywhere; SIGHUP only where it exists (not on Windows): there, closing the console ends it
    stopping = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    saved = {s: signal.signal(s, stop) for s in stopping}
    status = 0
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        status = 130
    except SystemExit as end:
        status = int(end.code or 0)
    finally:
        studio.close()
        sock.close()
        for s, handler in saved.items():
            signal.signal(s, handler)
    print("transcribe studio: stopped; its recordings and outputs are deleted", flush=True)
    return status
