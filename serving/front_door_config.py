"""A front door's nginx configuration (serving/front_door.py): production, a canary's share, a shadow's copies
through the internal hop, the request-id rule, and the folders nginx writes to."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lifecycle.project_state import private_folder
from serving.prediction_log import REQUEST_ID_PATTERN

UPSTREAM_HEADER = "X-Upstream"
ACCESS_LOG = "access.log"  # in the door's runtime folder (a path nginx expands no variable in): a line a request


@dataclass
class Route:
    """A trial server behind the front door."""

    upstream: str  # the server's base URL
    model_version: str
    weight: float = 0.0  # a canary's share of the requests, in percent


SHADOW_COPIES_IN_FLIGHT = 128  # more copies waiting for a slow shadow are dropped (the log shows them unpaired)


def _weight(percent: float) -> str:
    return f"{percent:.2f}".rstrip("0").rstrip(".") + "%"


def render(
    listen: str,
    upstream: str,
    folder: Path,
    max_body_bytes: int,
    canary: Route | None = None,
    shadow: Route | None = None,
) -> str:
    """nginx's configuration: `listen` proxied to `upstream` (host:port), with the request id passed on (the
    client's X-Request-ID when the servers' rule accepts it, else one nginx makes: production, canary and shadow
    all log the same id) and the answering server named in the response; a canary gets its share of the
    requests, picked by the request id; a shadow gets a copy of each through the internal hop. Paths are quoted:
    a project folder may hold spaces, quotes, `;`, `{`, `}`, `#`, `$` or non-ASCII letters."""
    temp = runtime_folder(folder)
    socket = temp / "shadow.sock"
    body_limit = max_body_bytes + 65536
    pool = "$mlops_pool" if canary else "production"
    trials = "" if canary else "    map $host $mlops_pool { default production; }\n"  # the arm in the access log
    if canary:
        trials += f"""    upstream canary {{
        server {upstream_address(canary.upstream)};
        keepalive 16;
        keepalive_timeout 2s;
    }}
    split_clients "${{mlops_request_id}}" $mlops_pool {{
        {_weight(canary.weight)} canary;
        * production;
    }}
"""
    mirror, shadow_locations, shadow_hop = "", "", ""
    if shadow:
        trials += f"""    upstream shadow {{
        server {upstream_address(shadow.upstream)};
        keepalive 4;
        keepalive_timeout 2s;
    }}
"""
        mirror = """            mirror /_mlops_shadow;
            mirror_request_body on;
"""
        shadow_locations = f"""        location = /_mlops_shadow {{
            internal;
            proxy_pass http://unix:{socket}:$request_uri;
            proxy_http_version 1.0;
            proxy_set_header Connection close;
            proxy_set_header Host $http_host;
            proxy_set_header X-Request-ID $mlops_request_id;
        }}
"""
        shadow_hop = f"""    # Copies in flight to the shadow are limited (one key for all: a constant);
    # beyond, a copy is dropped: a lagging shadow never ties up production's connections.
    limit_conn_zone $nginx_version zone=mlops_shadow_copies:1m;
    server {{
        # The shadow's hop: answers the mirror at once (empty_gif), then sends the copy on to the shadow.
        listen {_quoted(f"unix:{socket}")};
        client_max_body_size {body_limit};
        limit_conn mlops_shadow_copies {SHADOW_COPIES_IN_FLIGHT};
        location / {{
            mirror /_mlops_copy;
            mirror_request_body on;
            empty_gif;
        }}
        location = /_mlops_copy {{
            internal;
            proxy_pass http://shadow$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ignore_client_abort on;
            proxy_connect_timeout 5s;
            proxy_read_timeout 30s;
        }}
    }}
"""
    return f"""# Written by serving/front_door.py for each switch; edits are overwritten.
{_worker_user()}worker_processes 1;
pid {_quoted(folder / "nginx.pid")};
error_log {_quoted(folder / "error.log")} warn;
events {{ worker_connections 1024; }}
http {{
    # One line per request a client sent (subrequests such as a shadow's copy are not logged): which arm
    # answered, with which status, how fast. `deploy --canary N --judge` reads it (serving/front_door_log.py).
    log_format mlops_door escape=json '{{"time":$msec,"request_id":"$mlops_request_id",'
        '"arm":"$mlops_pool","upstream":"$upstream_addr","method":"$request_method","status":$status,'
        '"request_time":$request_time}}';
    access_log {_quoted(temp / ACCESS_LOG)} mlops_door;
    client_body_buffer_size 1m;
    client_body_temp_path {_quoted(temp / "body")};
    proxy_temp_path {_quoted(temp / "proxy")};
    fastcgi_temp_path {_quoted(temp / "fastcgi")};
    uwsgi_temp_path {_quoted(temp / "uwsgi")};
    scgi_temp_path {_quoted(temp / "scgi")};
    # The servers' request-id rule (serving/prediction_log.py): an id they would replace is replaced here,
    # once, so that production, canary and shadow all log the id the client gets back.
    map $http_x_request_id $mlops_request_id {{
        "~^{REQUEST_ID_PATTERN}$" $http_x_request_id;
        default $request_id;
    }}
    # Idle connections to a server are dropped after 2 s: the servers behind (uvicorn) close theirs after 5 s, and
    # a request nginx sends on a connection the server is closing fails with a 502 that nginx does not retry (POST).
    upstream production {{
        server {upstream};
        keepalive 16;
        keepalive_timeout 2s;
    }}
{trials}    server {{
        listen {listen};
        client_max_body_size {body_limit};
        location / {{
{mirror}            proxy_pass http://{pool};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Request-ID $mlops_request_id;
            proxy_read_timeout 300s;
            add_header {UPSTREAM_HEADER} $upstream_addr always;
        }}
{shadow_locations}    }}
{shadow_hop}}}
"""


def _quoted(value: Path | str) -> str:
    """A path as one nginx string, whatever it holds (in these directives nginx expands no variables)."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _nobody() -> tuple[int, int, str] | None:
    """(uid, gid, group) of `nobody`, to whom nginx run as root hands its workers; None when not run as root."""
    if os.geteuid() != 0:
        return None
    import grp
    import pwd

    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid, grp.getgrgid(nobody.pw_gid).gr_name


def _worker_user() -> str:
    """Run as root, nginx's master hands its workers to `nobody` (named here, with its group, so that the temp
    folders can be given to it); run as anyone else, nginx keeps that user."""
    nobody = _nobody()
    return f"user nobody {nobody[2]};\n" if nobody else ""


# A folder name nginx can take in a URL (the shadow hop's socket, `http://unix:PATH:`) and in every directive.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._-]+")


def runtime_folder(folder: Path) -> Path:
    """The door's temp folders and the shadow hop's socket, under the system's temp folder: nginx's workers (run
    as `nobody` when nginx runs as root) must reach them, and a project under a private folder is out of reach.
    (A temp folder whose path nginx cannot take in a URL is passed over for /tmp.)"""
    import hashlib

    temp = tempfile.gettempdir()
    base = Path(temp if _PLAIN_PATH.fullmatch(temp) else "/tmp")
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return base / f"mlops-front-door-{os.geteuid()}" / digest


def prepare_folders(folder: Path) -> None:
    """The door's folder and its temp folders. The temp folders' parent has a name anyone can guess, so it must
    be this user's own (see `private_folder`); nginx's workers, when they run as `nobody`, may pass through it
    but not list it, and own the folders they write request bodies to."""
    nobody = _nobody()
    folder.mkdir(parents=True, exist_ok=True)
    runtime = runtime_folder(folder)
    passable = 0o711 if nobody else 0o700
    private_folder(runtime.parent, passable)
    private_folder(runtime, passable)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):  # inside a folder only this user writes to
        (runtime / sub).mkdir(mode=0o700, exist_ok=True)
        if nobody:
            os.chown(runtime / sub, nobody[0], nobody[1])
        (runtime / sub).chmod(0o700)


def upstream_address(url: str) -> str:
    """host:port as nginx names the server it reached ($upstream_addr): localhost (MLflow's server) is 127.0.0.1."""
    return url.split("://", 1)[-1].rstrip("/").replace("localhost", "127.0.0.1")
