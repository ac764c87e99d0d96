"""Kombu's filesystem broker, made safe for a worker and a web server that share the folder.

The embedded default (no Redis) queues tasks as files. Kombu's own transport creates a
message file and then writes it, so a worker that lists the folder in between takes an
empty file, fails to decode it and stops (seen as "The Celery worker stopped unexpectedly").
Here a message is written under a name no reader looks for and renamed into the queue in
one step, and a reader claims a file by renaming it into the processed folder, which stays
on the same filesystem. A file that still does not decode is set aside with an error
instead of stopping the worker.
"""

import logging
import os
import uuid
from pathlib import Path
from queue import Empty

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

UNREADABLE_FOLDER = "unreadable"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(filesystem.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = Path(self.data_folder_out) / name
        partial = final.with_name(name + ".part")  # not "<queue>.msg": no reader takes it
        try:
            partial.write_bytes(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise filesystem.ChannelError(f"Cannot add file {str(final)!r} to directory") from exc

    def _get(self, queue):
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = Path(self.processed_folder) / name
            try:
                os.replace(Path(self.data_folder_in) / name, claimed)  # only one reader wins
            except OSError:
                continue  # another reader took it first
            body = claimed.read_bytes()
            try:
                message = loads(bytes_to_str(body))
            except ValueError:
                self._set_aside(claimed)
                continue
            if not self.store_processed:
                claimed.unlink()
            return message
        raise Empty()

    def _set_aside(self, path: Path) -> None:
        folder = path.parent / UNREADABLE_FOLDER
        folder.mkdir(exist_ok=True)
        os.replace(path, folder / path.name)
        logger.error("Broker message %s does not decode; it was moved to %s", path.name, folder)


class Transport(filesystem.Transport):
    Channel = Channel
