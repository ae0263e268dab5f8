"""The reader study's page: one image at a time to a named reader, who clicks real or synthetic.

    jaxsyn reader-study serve STUDY [--port P]

Plain HTML forms, no script: GET /reader/NAME shows the reader's next unanswered image; the
click POSTs its id and answer, the answer is written to disk (Study.record, atomic) before the
reply, and the reply redirects to GET again (a reload re-asks nothing and records nothing twice;
a restarted server carries on where the reader was). Images are served by id from images/ only;
key.json is never opened here. Responses carry no Last-Modified/ETag (file times could order
the images) and are not cached.
"""

from __future__ import annotations

import html

import bottle

from jaxsyn.errors import ConfigError
from jaxsyn.zoo.pages import guard, loopback_server, serve_forever
from jaxsyn.zoo.reader_study import Study, check_reader

STYLE = (
    "<style>body{font-family:sans-serif;text-align:center;margin:2em}"
    "img{width:512px;max-width:95vw;image-rendering:auto;background:#000}"
    "button{font-size:1.3em;margin:.6em 1.2em;padding:.4em 1.4em}</style>"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"{STYLE}</head><body>{body}</body></html>"
    )


def make_app(folder) -> bottle.Bottle:
    study = Study(folder)
    app = bottle.Bottle()
    guard(app)

    def reader_or_400(name: str) -> str:
        try:
            return check_reader(name)
        except ConfigError as e:
            bottle.abort(400, str(e))

    @app.get("/")
    def start():
        name = bottle.request.query.getunicode("name")
        if name:
            bottle.redirect(f"/reader/{reader_or_400(name)}", 303)
        return _page(
            "Reader study",
            "<h1>Reader study</h1><p>Each image is either a real scan or a synthetic one, each "
            "drawn at random. Say which you think it is.</p>"
            "<form id='start' method='get' action='/'><label>Your name "
            "<input id='name' name='name' required pattern='[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}'>"
            "</label> <button id='begin' type='submit'>Start</button></form>",
        )

    @app.get("/reader/<name>")
    def show(name):
        reader = reader_or_400(name)
        image_id = study.next_image(reader)
        done = len(study.answers(reader))
        if image_id is None:
            return _page(
                "Done",
                f"<h1 id='done'>Thank you, {html.escape(reader)}</h1><p>All {done} images answered.</p>",
            )
        bottle.response.set_header("Cache-Control", "no-store")
        return _page(
            "Reader study",
            f"<p id='progress'>{html.escape(reader)}: image {done + 1} of {len(study.images)}</p>"
            f"<img id='picture' src='/image/{image_id}.png' alt='image to rate'>"
            f"<form id='answer' method='post' action='/reader/{reader}'>"
            f"<input type='hidden' name='id' value='{image_id}'>"
            "<div><button id='real' name='answer' value='real'>Real</button>"
            "<button id='synthetic' name='answer' value='synthetic'>Synthetic</button></div></form>",
        )

    @app.post("/reader/<name>")
    def answer(name):
        reader = reader_or_400(name)
        image_id, given = bottle.request.forms.get("id", ""), bottle.request.forms.get("answer", "")
        if given not in ("real", "synthetic"):
            bottle.abort(400, f"answer {given!r}: expected real or synthetic")
        study.record(reader, image_id, given)  # False for a repeated form: nothing stored
        bottle.redirect(f"/reader/{reader}", 303)

    @app.get("/image/<image_id>.png")
    def image(image_id):
        path = study.image_path(image_id)
        if path is None:
            bottle.abort(404, "no such image")
        bottle.response.content_type = "image/png"
        bottle.response.set_header("Cache-Control", "no-store")
        return path.read_bytes()

    return app


def serve(folder, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve study `folder` until Ctrl-C, printing its address."""
    serve_forever(loopback_server(make_app(folder), host, port), f"reader study {folder}")
