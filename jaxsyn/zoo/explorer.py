"""The model explorer: a page on 127.0.0.1 where latent sliders, a seed and the condition controls
drive a model live (`jaxsyn models explore ID`).

    from jaxsyn.zoo.explorer import serve
    serve(Generators(), "00003_HAGAN_CT_PHANTOM_64")      # prints the address, Ctrl-C stops

The protocol. The page drives any object with these three members (`serve` gets one from
`generators.get_generate_function(model_id)`; `serve_explorable` takes one directly):

    latent_dim: int             size of one sample's latent vector (0: no sliders)
    conditions_schema: dict     {name: {"type": "integer" | "number" | "string",
                                        "enum": [...]            (optional: a drop-down),
                                        "minimum": x, "maximum": y (optional, numbers),
                                        "default": v             (optional; else the first
                                                                  enum value or the minimum)}}
    generate(latents, seed, conditions) -> dict
        latents     float32 [latent_dim], or None: draw them from `seed`
        seed        int: the sample's other randomness (and the latents when None)
        conditions  {name: value}, one per schema entry, of the schema's type
        returns     {"latents": float32 [latent_dim], the vector used (the sliders start there),
                     and one or more of
                     "volume": float [D, H, W]          shown as three orthogonal slices
                     "images": float [N, H, W(, C)]     shown as a grid (C = 3: colour; other C:
                                                        one picture per channel)
                     "rows":   list of {column: value}  (or a DataFrame) shown as a table
                     "window": (lo, hi)                 display range; default (-1024, 600)
                                                        for a volume (HU), (0, 1) for images
                     "titles": [str, ...]               (optional) one per image}
    A paired patient gives "volume" and "rows" together.

The sliders are grouped as medigan's ModelVisualizer groups them (`slider_grouper=10`, values in
[-3, 3], an "offset" slider that moves every entry, a new-seed and a reset button): one slider per
ten consecutive latent entries. medigan sets all ten entries to the slider's value; here the
slider starts at the group's mean and moving it shifts the ten entries by as much, so the seed's
variation within the group is kept (ten equal entries lie far from where a Gaussian prior puts
its samples).
"""

from __future__ import annotations

import json

import bottle
import numpy as np

from jaxsyn.data.preview import orthogonal_slices
from jaxsyn.errors import ConfigError
from jaxsyn.zoo.pages import data_url, guard, loopback_server, serve_forever, to_uint8

GROUP = 10  # latent entries per slider (medigan's slider_grouper)
RANGE = 3.0  # slider range [-RANGE, RANGE] (medigan's max_input_value)
HU_WINDOW = (-1024.0, 600.0)


def check_explorable(explorable, what: str = "model") -> None:
    for name in ("latent_dim", "conditions_schema", "generate"):
        if not hasattr(explorable, name):
            raise ConfigError(
                f"{what}: its generate function has no {name!r}; expected latent_dim, conditions_schema and generate(latents, seed, conditions)"
            )


def read_conditions(schema: dict, given: dict) -> dict:
    """{name: value} of `given` checked against and converted to `schema`'s types; a missing one
    takes its default. Raises ConfigError naming the condition."""
    out = {}
    for name, spec in schema.items():
        value = given.get(name, default_condition(spec))
        kind = spec.get("type", "number")
        try:
            value = {"integer": int, "number": float, "string": str}[kind](value)
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"condition {name}: {value!r}; expected a value of type {kind}"
            ) from None
        if "enum" in spec and value not in spec["enum"]:
            raise ConfigError(f"condition {name}: {value!r}; expected one of {spec['enum']}")
        lo, hi = spec.get("minimum"), spec.get("maximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"condition {name}: {value!r}; expected within [{lo}, {hi}]")
        out[name] = value
    return out


def default_condition(spec: dict):
    if "default" in spec:
        return spec["default"]
    if spec.get("enum"):
        return spec["enum"][0]
    return spec.get("minimum", 0)


def render(result: dict) -> dict:
    """The page's JSON of one `generate` result: panels as PNG data URLs, rows as a table."""
    if "latents" not in result:
        raise ConfigError("generate returned no 'latents'; expected the vector it used")
    panels = []
    if "volume" in result:
        window = tuple(result.get("window", HU_WINDOW))
        volume = np.asarray(result["volume"], np.float32).reshape(np.shape(result["volume"])[:3])
        panels.append(
            {
                "title": "axial | coronal | sagittal",
                "src": data_url(orthogonal_slices(volume, window)),
            }
        )
    if "images" in result:
        window = tuple(result.get("window", (0.0, 1.0)))
        titles = list(result.get("titles", []))
        for i, image in enumerate(np.asarray(result["images"], np.float32)):
            name = titles[i] if i < len(titles) else f"image {i}"
            if image.ndim == 2 or image.shape[-1] == 3:  # grey or RGB: one picture
                panels.append({"title": name, "src": data_url(to_uint8(image, window))})
                continue
            for c in range(
                image.shape[-1]
            ):  # channels (e.g. a 9-slice vertebral unit) side by side
                title = name + (f" channel {c}" if image.shape[-1] > 1 else "")
                panels.append({"title": title, "src": data_url(to_uint8(image[..., c], window))})
    rows = result.get("rows")
    if rows is not None and hasattr(rows, "to_dict"):  # a DataFrame
        rows = rows.to_dict("records")
    columns = list(dict.fromkeys(c for row in rows or [] for c in row))
    table = [[_plain(row.get(c)) for c in columns] for row in rows or []]
    latents = np.asarray(result["latents"], np.float32).reshape(-1)
    return {"latents": latents.tolist(), "panels": panels, "columns": columns, "rows": table}


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def make_app(explorable, title: str = "model", seed: int = 0) -> bottle.Bottle:
    check_explorable(explorable, title)
    dim = int(explorable.latent_dim)
    schema = dict(explorable.conditions_schema or {})
    app = bottle.Bottle()
    guard(app)

    @app.get("/")
    def page():
        settings = {
            "title": title,
            "latent_dim": dim,
            "group": GROUP,
            "range": RANGE,
            "seed": seed,
            "conditions": schema,
        }
        return PAGE.replace("__SETTINGS__", json.dumps(settings).replace("</", "<\\/"))

    @app.post("/api/generate")
    def generate():
        body = bottle.request.json or {}
        try:
            latents = body.get("latents")
            if latents is not None:
                latents = np.asarray(latents, np.float32).reshape(-1)
                if latents.shape != (dim,) or not np.isfinite(latents).all():
                    raise ConfigError(
                        f"latents: {latents.shape[0]} values; expected {dim} finite numbers"
                    )
            conditions = read_conditions(schema, body.get("conditions") or {})
            seed_ = int(body.get("seed", seed))
        except (ConfigError, TypeError, ValueError) as e:
            bottle.response.status = 400
            return {"error": str(e)}
        return render(explorable.generate(latents, seed_, conditions))

    return app


def serve_explorable(explorable, title: str = "model", host="127.0.0.1", port=0, seed=0) -> None:
    serve_forever(
        loopback_server(make_app(explorable, title, seed), host, port), f"explorer for {title}"
    )


def serve(generators, model_id, host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
    """Serve the explorer for library model `model_id` until Ctrl-C, printing its address."""
    explorable = generators.get_generate_function(model_id)
    serve_explorable(explorable, str(model_id), host, port, seed)


PAGE = """<!doctype html><html><head><meta charset='utf-8'><title>jaxsyn explorer</title><style>
body{font-family:sans-serif;margin:1em;display:flex;gap:2em}#controls{width:22em}
label{display:block;margin:.3em 0}input[type=range]{width:14em;vertical-align:middle}
#panels img{image-rendering:pixelated;width:min(60vw,768px);display:block;margin:.3em 0}
#panels.grid{display:flex;flex-wrap:wrap;gap:.3em}#panels.grid img{width:192px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:1px 6px}#error{color:#b00}
</style></head><body><div id='controls'><h2 id='title'></h2>
<label>seed <input id='seed' type='number' step='1'></label>
<button id='new-seed'>New seed</button> <button id='reset'>Reset</button>
<div id='conditions'></div><h3>Input latent vector</h3>
<label>offset <input id='offset' type='range' min='-6' max='6' step='0.05' value='0'></label>
<div id='sliders'></div></div>
<div><p id='status'>rendered 0</p><p id='error'></p><div id='panels'></div><table id='rows'></table></div>
<script>
const S = __SETTINGS__;
let base = null, start = [], rendered = 0, busy = false, pending = null;
const $ = id => document.getElementById(id);
$('title').textContent = S.title;
$('seed').value = S.seed;
const nGroups = Math.ceil(S.latent_dim / S.group);
const group = g => [g * S.group, Math.min((g + 1) * S.group, S.latent_dim)];
const mean = (z, g) => { const [a, b] = group(g); let s = 0; for (let i = a; i < b; i++) s += z[i]; return s / (b - a); };
for (let g = 0; g < nGroups; g++) {
  const l = document.createElement('label');
  l.innerHTML = `z${g + 1} <input id='latent-${g}' type='range' min='${-S.range}' max='${S.range}' step='0.05'>`;
  $('sliders').appendChild(l);
}
for (const [name, spec] of Object.entries(S.conditions)) {
  const l = document.createElement('label');
  l.textContent = name + ' ';
  let el;
  if (spec.enum) {
    el = document.createElement('select');
    for (const v of spec.enum) { const o = document.createElement('option'); o.value = v; o.textContent = v; el.appendChild(o); }
  } else {
    el = document.createElement('input'); el.type = spec.type === 'string' ? 'text' : 'number';
    if (spec.type === 'integer') el.step = 1; else el.step = 'any';
    if (spec.minimum !== undefined) el.min = spec.minimum; if (spec.maximum !== undefined) el.max = spec.maximum;
  }
  el.id = 'cond-' + name;
  el.value = spec.default !== undefined ? spec.default : (spec.enum ? spec.enum[0] : (spec.minimum || 0));
  el.addEventListener('change', () => request(false));
  l.appendChild(el); $('conditions').appendChild(l);
}
function conditions() {
  const c = {};
  for (const [name, spec] of Object.entries(S.conditions)) {
    const v = $('cond-' + name).value;
    c[name] = spec.type === 'string' ? v : Number(v);
  }
  return c;
}
// the seed's vector, each group shifted by its slider's move, plus the offset (a slider starts at
// its group's mean, rounded to the slider's step: the move is counted from there)
function latents() {
  if (!base) return null;
  const z = base.slice(), off = Number($('offset').value);
  for (let g = 0; g < nGroups; g++) {
    const [a, b] = group(g), shift = Number($('latent-' + g).value) - start[g];
    for (let i = a; i < b; i++) z[i] += shift + off;
  }
  return z;
}
function setSliders() {
  for (let g = 0; g < nGroups; g++) { $('latent-' + g).value = mean(base, g); start[g] = Number($('latent-' + g).value); }
  $('offset').value = 0;
}
function request(fresh) {
  const body = {seed: Number($('seed').value), conditions: conditions(), latents: fresh ? null : latents()};
  if (busy) { pending = body; return; }
  send(body);
}
function send(body) {
  busy = true;
  fetch('/api/generate', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)})
    .then(r => r.json().then(j => [r.ok, j]))
    .then(([ok, j]) => {
      if (!ok) { $('error').textContent = j.error; return; }
      $('error').textContent = '';
      if (body.latents === null) { base = j.latents; setSliders(); }
      show(j);
    })
    .catch(e => { $('error').textContent = String(e); })
    .finally(() => {
      busy = false;
      if (pending) { const b = pending; pending = null; send(b); }
    });
}
function show(j) {
  const p = $('panels'); p.innerHTML = ''; p.className = j.panels.length > 1 ? 'grid' : '';
  j.panels.forEach((panel, i) => { const img = document.createElement('img'); img.id = 'panel-' + i; img.title = panel.title; img.src = panel.src; p.appendChild(img); });
  const t = $('rows'); t.innerHTML = '';
  const cells = (values, tag) => { const r = t.insertRow(); for (const v of values) { const c = document.createElement(tag); c.textContent = v; r.appendChild(c); } };
  if (j.columns.length) { cells(j.columns, 'th'); for (const row of j.rows) cells(row, 'td'); }
  rendered += 1; $('status').textContent = 'rendered ' + rendered;
}
for (let g = 0; g < nGroups; g++) $('latent-' + g).addEventListener('input', () => request(false));
$('offset').addEventListener('input', () => request(false));
$('seed').addEventListener('change', () => request(true));
$('new-seed').addEventListener('click', () => { $('seed').value = Math.floor(Math.random() * 2147483647); request(true); });
$('reset').addEventListener('click', () => { setSliders(); request(false); });
request(true);
</script></body></html>
"""
