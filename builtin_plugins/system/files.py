"""Safe file handling for the system routes: uploads, request bodies with size limits, safe names.

Everything lands under ``$DOT_PIOREACTOR``: uploads in ``uploads/`` with a
sanitised base name; request bodies are streamed to disk and cut off at the
configured limit (``[system] max_upload_mb``, default 200; ``max_import_mb``,
default 512).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import falcon

from reactorkit.plugin import ApiError
from reactorkit.plugin import UnsafePath, dot_pioreactor, durable_replace, safe_join

CHUNK = 1 << 16
DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_MAX_IMPORT_MB = 512
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}\Z")


def uploads_dir() -> Path:
    """``$DOT_PIOREACTOR/uploads`` (created on demand)."""
    path = dot_pioreactor() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def limit_bytes(key: str, default_mb: int) -> int:
    """``[system] <key>`` in MB as bytes."""
    from reactorkit.plugin import get_config

    try:
        return int(float(get_config().get("system", key, fallback=str(default_mb))) * 1024 * 1024)
    except ValueError:
        return default_mb * 1024 * 1024


def safe_name(filename: str | None) -> str:
    """A plain file name (letters, digits, ``. _ + -``; no folders, not hidden).

    Raises:
        UnsafePath: the name has a folder part, ``..`` or is absolute.
        ApiError: 400 for other bad names.
    """
    if not filename:
        raise ApiError(falcon.HTTP_400, "Missing file name.", cause="The uploaded part has no filename.",
                       remediation="Send the file as multipart/form-data with a filename.")
    if "/" in filename or "\\" in filename or filename in (".", "..") or "\x00" in filename:
        raise UnsafePath(f"{filename!r} is not a plain file name")
    if not _SAFE_NAME.fullmatch(filename):
        raise ApiError(falcon.HTTP_400, "Invalid file name.",
                       cause=f"{filename!r} must be letters, digits, '.', '_', '+' or '-', not start with '.', "
                             "at most 200 characters.", remediation="Rename the file and upload it again.")
    return filename


def copy_limited(source: BinaryIO, target: Path, limit: int, what: str) -> int:
    """Copy a stream to ``target`` (atomically and durably, via a temporary name: :func:`durable_replace`);
    returns the size.

    Raises:
        ApiError: 413 when more than ``limit`` bytes arrive (nothing is left behind).
    """
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    size = 0
    try:
        with open(tmp, "wb") as out:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise ApiError(falcon.HTTP_413, f"The {what} is too large.",
                                   cause=f"More than {limit // 2**20} MB were sent.",
                                   remediation="Send a smaller file, or raise the limit in [system] of config.ini.")
                out.write(chunk)
        durable_replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def read_upload(req: falcon.Request, target_dir: Path, limit: int, *, fields: tuple[str, ...],
                what: str, name: str | None = None) -> Path:
    """Save the file of a request to ``target_dir``: a multipart part named one of ``fields``, or the raw body.

    Args:
        name: File name to use (default: the part's sanitised filename).

    Raises:
        ApiError: 400 no file / bad name, 413 too large.
        UnsafePath: the filename tries to leave the folder.
    """
    if req.content_length is not None and req.content_length > limit + 1024 * 1024:
        raise ApiError(falcon.HTTP_413, f"The {what} is too large.",
                       cause=f"{req.content_length // 2**20} MB were announced; the limit is {limit // 2**20} MB.",
                       remediation="Send a smaller file, or raise the limit in [system] of config.ini.")
    content_type = (req.content_type or "").lower()
    if content_type.startswith("multipart/form-data"):
        try:
            form = req.get_media()
            for part in form:
                if part.name in fields:
                    filename = name or safe_name(part.filename)
                    target = safe_join(target_dir, filename)
                    copy_limited(part.stream, target, limit, what)
                    return target
        except falcon.MediaMalformedError as exc:
            raise ApiError(falcon.HTTP_400, "Invalid multipart body.", cause=str(exc.description or exc.title),
                           remediation="Send multipart/form-data.") from None
        raise ApiError(falcon.HTTP_400, f"No {what} in the request.",
                       cause=f"The form has no part named {' or '.join(fields)}.",
                       remediation=f"Send the file in a form field named {fields[0]!r}.")
    if not req.content_length:
        raise ApiError(falcon.HTTP_400, f"No {what} in the request.", cause="The body is empty.",
                       remediation=f"Send multipart/form-data with a field {fields[0]!r}.")
    filename = name or safe_name(req.get_param("filename") or f"upload-{uuid.uuid4().hex[:8]}.bin")
    target = safe_join(target_dir, filename)
    copy_limited(req.bounded_stream, target, limit, what)
    return target


def inside_dot_pioreactor(path_text: str) -> Path:
    """A path given by a caller, relative to ``$DOT_PIOREACTOR`` or absolute inside it.

    Raises:
        UnsafePath: it leads outside (``..``, another absolute path, a link).
    """
    root = dot_pioreactor()
    path = Path(path_text)
    if path.is_absolute():
        resolved, real_root = path.resolve(), root.resolve()
        if resolved != real_root and real_root not in resolved.parents:
            raise UnsafePath(f"{path_text!r} is outside {root}")
        return resolved
    return safe_join(root, path_text)


def json_list_of_names(body: dict[str, Any], field: str) -> list[str]:
    from reactorkit.plugin import invalid

    value = body.get(field)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise invalid(f"Field '{field}' must be a non-empty list of names.", f'Example: {{"{field}": ["my-plugin"]}}.')
    return value
