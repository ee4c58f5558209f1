"""What the command line prints when something outside it fails: one line that says what
failed and what to do, never a traceback (set TIDEGATE_DEBUG=1 to get the traceback).

The translation lives here, at the edge, so the commands themselves can let boto3 and the
file system raise as they like; a library caller (tidegate.local) gets the exceptions.
"""

from __future__ import annotations

import argparse
import os

# Optional modules and the extra that installs each (pyproject.toml's optional-dependencies).
_EXTRAS = {
    "moto": "local",
    "confluent_kafka": "local",
    "werkzeug": "local",
    "flask": "local",
    "aws_cdk": "cdk",
    "constructs": "cdk",
    "cdk_nag": "cdk",
    "matplotlib": "plot",
}


class CliError(Exception):
    """A failure the user can act on; the message is the whole story (one line)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _where(args: argparse.Namespace) -> str:
    url = getattr(args, "endpoint_url", None)
    return f"at {url}" if url else "in the configured AWS account"


def _start_hint(args: argparse.Namespace) -> str:
    url = getattr(args, "endpoint_url", None)
    pipeline = getattr(args, "pipeline", None) or "PIPELINE.yaml"
    if url:
        return (f"start `tidegate local run {pipeline} --events EVENTS.jsonl --results "
                f"OUT.jsonl --follow --endpoint-url {url}` first")
    return "deploy the pipeline's stack first, or give --stack / --endpoint-url"


def _botocore_message(exc: Exception, args: argparse.Namespace) -> str | None:
    try:
        from botocore import exceptions as bce
    except ImportError:  # pragma: no cover - botocore comes with boto3, a dependency
        return None
    if isinstance(exc, bce.NoRegionError):
        return "no AWS region configured: pass --region or set AWS_DEFAULT_REGION"
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return ("no AWS credentials found: configure them (aws configure, AWS_PROFILE) or, "
                "for a local endpoint, pass --endpoint-url")
    if isinstance(exc, bce.EndpointConnectionError | bce.ConnectionClosedError):
        return (f"cannot reach {getattr(exc, 'kwargs', {}).get('endpoint_url', 'the endpoint')}"
                f": {_start_hint(args)}")
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        text = str(error.get("Message", "")).rstrip(".") or code
        operation = getattr(exc, "operation_name", "a call")
        if code in ("ResourceNotFoundException", "QueueDoesNotExist",
                    "AWS.SimpleQueueService.NonExistentQueue", "ValidationError",
                    "StreamNotFound", "NotFoundException"):
            return f"{text} {_where(args)} ({operation}): {_start_hint(args)}"
        if code in ("UnrecognizedClientException", "InvalidClientTokenId",
                    "ExpiredTokenException", "AccessDeniedException", "AccessDenied",
                    "InvalidSignatureException", "SignatureDoesNotMatch"):
            return f"AWS refused the credentials ({operation}: {code}): check them or the region"
        return f"AWS call {operation} failed {_where(args)}: {code}: {text}"
    if isinstance(exc, bce.BotoCoreError):
        return f"AWS client error: {exc}"
    return None


def explain(exc: BaseException, args: argparse.Namespace) -> str | None:
    """The one-line message for an exception the user can act on; None for a bug."""
    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError):
        top = (exc.name or "").split(".")[0]
        if top in _EXTRAS:
            return (f"this needs {top}, which is not installed: "
                    f"pip install 'tidegate[{_EXTRAS[top]}]'")
        return None
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, Exception):
        message = _botocore_message(exc, args)
        if message is not None:
            return message
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    return None


def report(exc: BaseException, args: argparse.Namespace) -> tuple[str, int]:
    """(line to print, exit code) for any exception that reached the command line."""
    message = explain(exc, args)
    code = exc.exit_code if isinstance(exc, CliError) else 1
    if message is None:
        message = (f"unexpected {type(exc).__name__}: {exc} "
                   "(TIDEGATE_DEBUG=1 prints the traceback; please report it)")
    return "error: " + " ".join(message.split()), code


def debugging() -> bool:
    return os.environ.get("TIDEGATE_DEBUG", "") not in ("", "0")


def check_input(path: str, what: str) -> None:
    """An input file must be readable before a run starts, not after it."""
    if not os.path.isfile(path):
        raise CliError(f"{what} {path}: no such file", exit_code=2)
    if not os.access(path, os.R_OK):
        raise CliError(f"{what} {path}: not readable", exit_code=2)


def check_output(path: str | None, what: str) -> None:
    """An output's folder must exist and be writable before a run starts: finding out
    after it would lose the run."""
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"{what} {path}: folder {folder} does not exist", exit_code=2)
    if os.path.isdir(path):
        raise CliError(f"{what} {path}: is a folder, not a file", exit_code=2)
    target = path if os.path.exists(path) else folder
    if not os.access(target, os.W_OK):
        raise CliError(f"{what} {path}: not writable", exit_code=2)
