"""``transcribe studio``: a local web page to drop recordings on, see and hear their notes, tune
the decoder and take away MIDI, MusicXML, CSV, JSON and the piano-roll PNG.

``cli.py`` parses the options and starts the server (``server.py``, Starlette under uvicorn) over
the jobs of ``state.py``; the page is ``static/`` (plain HTML, CSS and JavaScript, no build step,
nothing fetched from the internet). Needs ``pip install 'transcribe-piano[studio]'``.
"""
