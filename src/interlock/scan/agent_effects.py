"""The side effects an agent tool can have, recognised from a call's dotted name: what `agent_code` looks for.

A call is named by `dotted` (in `agent_module`): the attribute chain with calls elided and its root resolved
through the module's imports or the type of the variable it was assigned from, so `requests.post(...)`,
`requests.Session().post(...)` and `session.post(...)` after `session = requests.Session()` are all
`requests.*.post`. A call on an object of unknown origin is not a side effect here (precision over recall).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

Category = Literal["HTTP write", "process", "payment", "database write", "cloud change", "email", "file write"]

HTTP_MODULES = frozenset({"requests", "requests.api", "httpx"})
HTTP_CLIENTS = frozenset({"requests.Session", "requests.session", "requests.sessions.Session", "httpx.Client",
                          "httpx.AsyncClient", "aiohttp.ClientSession", "urllib3.PoolManager"})
HTTP_WRITE_VERBS = frozenset({"post", "put", "patch", "delete"})
HTTP_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROCESS_CALLS = frozenset({
    "subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output", "subprocess.Popen",
    "subprocess.getoutput", "subprocess.getstatusoutput", "os.system", "os.popen", "os.execv", "os.execve",
    "os.execl", "os.execle", "os.execlp", "os.execlpe", "os.execvp", "os.execvpe", "os.spawnl", "os.spawnle",
    "os.spawnlp", "os.spawnlpe", "os.spawnv", "os.spawnve", "os.spawnvp", "os.spawnvpe", "os.posix_spawn",
    "os.posix_spawnp", "os.startfile", "os.kill", "asyncio.create_subprocess_exec",
    "asyncio.create_subprocess_shell", "pty.spawn",
})
PAYMENT_ROOTS = ("stripe.", "braintree.", "paypalrestsdk.")
PAYMENT_VERBS = frozenset({
    "create", "modify", "update", "delete", "cancel", "capture", "confirm", "pay", "refund", "reverse",
    "void", "void_invoice", "finalize_invoice", "send_invoice", "mark_uncollectible", "sale",
    "submit_for_settlement", "credit", "execute",
})
CLOUD_ROOTS = ("boto3.", "aioboto3.", "botocore.")
CLOUD_WRITE_PREFIXES = (
    "put_", "create_", "delete_", "update_", "modify_", "attach_", "detach_", "terminate_", "run_", "start_",
    "stop_", "reboot_", "send_", "upload_", "copy_", "remove_", "add_", "associate_", "disassociate_", "authorize_",
    "revoke_", "set_", "tag_", "untag_", "enable_", "disable_", "register_", "deregister_", "restore_", "import_",
    "execute_", "write_", "change_", "reset_", "cancel_", "batch_write", "transact_write", "release_", "allocate_",
    "replace_", "purge_", "publish",
)
CLOUD_WRITE_VERBS = frozenset({"invoke", "invoke_async", "delete", "put", "copy", "copy_from", "upload_file",
                               "upload_fileobj", "put_item", "update_item", "delete_item"})
EMAIL_CLIENTS = frozenset({"smtplib.SMTP", "smtplib.SMTP_SSL", "smtplib.LMTP"})
EMAIL_VERBS = frozenset({"sendmail", "send_message"})
FILE_CALLS = frozenset({
    "os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.rename", "os.renames", "os.replace", "os.truncate",
    "os.chmod", "os.chown", "os.link", "os.symlink", "shutil.rmtree", "shutil.move", "shutil.copy",
    "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.chown",
})
OPEN_CALLS = frozenset({"open", "io.open", "builtins.open", "codecs.open", "aiofiles.open", "os.fdopen"})
FILE_METHODS = frozenset({"write_text", "write_bytes", "unlink", "rmdir", "touch"})
SQL_WRITE = re.compile(
    r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(INSERT|UPDATE|DELETE|REPLACE|MERGE|UPSERT|DROP|ALTER|CREATE|TRUNCATE|GRANT|"
    r"REVOKE)\b", re.IGNORECASE | re.DOTALL)
SQL_METHODS = frozenset({"execute", "executemany", "executescript", "exec_driver_sql"})
ORM_WRITE_VERBS = frozenset({"create", "update", "delete", "bulk_create", "bulk_update", "get_or_create",
                             "update_or_create"})


@dataclass(frozen=True)
class Effect:
    """A side-effecting call: its category, its dotted name as written, its line, and the calls that lead to it."""

    category: Category
    call: str
    line: int
    via: tuple[str, ...] = ()


def classify(call: ast.Call, dotted: str | None, constants: dict[str, str]) -> Effect | None:
    """The side effect of `call` (named `dotted`), or None when it has none Interlock knows of."""
    if dotted is None:
        return None
    line = call.lineno
    head, _, verb = dotted.rpartition(".")
    if (head in HTTP_MODULES or head in HTTP_CLIENTS) and verb in HTTP_WRITE_VERBS:
        return Effect("HTTP write", dotted, line)
    if (head in HTTP_MODULES or head in HTTP_CLIENTS) and verb == "request":
        method = _argument(call, 0, "method")
        if isinstance(method, ast.Constant) and isinstance(method.value, str):
            return Effect("HTTP write", f"{dotted}({method.value!r})", line) \
                if method.value.upper() in HTTP_WRITE_METHODS else None
        return Effect("HTTP write", f"{dotted}(method chosen at run time)", line)
    if dotted == "urllib.request.urlopen" and _argument(call, 1, "data") is not None:
        return Effect("HTTP write", f"{dotted}(data=...)", line)
    if dotted in PROCESS_CALLS:
        return Effect("process", dotted, line)
    if dotted.startswith(PAYMENT_ROOTS) and verb in PAYMENT_VERBS:
        return Effect("payment", dotted, line)
    if dotted.startswith(CLOUD_ROOTS) and _cloud_write(dotted, verb):
        return Effect("cloud change", dotted, line)
    if head in EMAIL_CLIENTS and verb in EMAIL_VERBS:
        return Effect("email", dotted, line)
    if verb in SQL_METHODS and _sql_write(call, constants):
        return Effect("database write", dotted, line)
    if verb == "commit" and not call.args and not call.keywords:
        return Effect("database write", dotted, line)
    if verb == "save" or (verb in ORM_WRITE_VERBS and ".objects" in f".{head}"):
        return Effect("database write", dotted, line)
    if dotted in FILE_CALLS or (verb in FILE_METHODS and head):
        return Effect("file write", dotted, line)
    if dotted in OPEN_CALLS and _writes(call):
        return Effect("file write", dotted, line)
    return None


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for given in call.keywords:
        if given.arg == keyword:
            return given.value
    return call.args[position] if len(call.args) > position else None


def _cloud_write(dotted: str, verb: str) -> bool:
    parts = dotted.split(".")
    made_by_sdk = any(part in ("client", "resource", "create_client") for part in parts[1:-1])
    return made_by_sdk and (verb.startswith(CLOUD_WRITE_PREFIXES) or verb in CLOUD_WRITE_VERBS)


def _writes(call: ast.Call) -> bool:
    mode = _argument(call, 1, "mode")
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return any(flag in mode.value for flag in "wax+")
    return True  # a mode chosen at run time may write


def _sql_write(call: ast.Call, constants: dict[str, str]) -> bool:
    statement = _argument(call, 0, "statement") or _argument(call, 0, "sql")
    text = _literal_prefix(statement, constants)
    return text is not None and SQL_WRITE.match(text) is not None


def _literal_prefix(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    """The leading literal text of an SQL argument: a string, an f-string, a concatenation, `text("...")`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.JoinedStr) and node.values:
        return _literal_prefix(node.values[0], constants)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _literal_prefix(node.left, constants)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _literal_prefix(node.func.value, constants)
    if isinstance(node, ast.Call) and node.args:
        return _literal_prefix(node.args[0], constants)
    return None
