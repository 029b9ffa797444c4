"""The program that runs inside the sandbox: student code and nothing else.

It answers requests from the grader, one frame at a time, over two pipe file
descriptors that are not stdin/stdout (student prints cannot corrupt the protocol).
It knows nothing of tests, references or expected values: it loads the submission,
calls what it is asked to call with the inputs it is given, and sends the results
back in the wire format. Everything it says is treated as untrusted by the grader.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import importlib
import io
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any

import torch

from protocol.codec import Handle
from protocol.frames import FrameTooLarge, frame, read_frame
from protocol.limits import REPLY_LIMITS, REQUEST_LIMITS
from protocol.messages import VALUE_TOO_LARGE

OUTPUT_LIMIT = 64 * 1024
STUDENT_MODULE = "submission"


class CappedText(io.TextIOBase):
    """A stdout/stderr replacement that keeps the first bytes of what is printed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            text = str(text)
        room = self.limit - self.size
        if room > 0:
            kept = text[:room]
            self.parts.append(kept)
            self.size += len(kept)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def take(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n... [{self.dropped} more characters of output dropped]"
        self.parts, self.size, self.dropped = [], 0, 0
        return text


class _IPythonStub:
    """Enough of get_ipython() for notebooks exported with magics as function calls."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def trimmed_traceback(exc: BaseException) -> str:
    """The traceback limited to the student's own frames (cells and submission files)."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.startswith("<cell") or frame.filename.startswith("/submission")
    ]
    lines = traceback.format_list(frames) if frames else []
    lines += traceback.format_exception_only(type(exc), exc)
    text = "".join(lines)
    return text[-4000:]


def error_reply(exc: BaseException, kind: str | None = None) -> dict[str, Any]:
    try:
        message = str(exc)[:2000]
    except Exception:
        message = "<unprintable exception>"
    return {
        "ok": False,
        "error": {
            "type": kind or type(exc).__name__,
            "message": message,
            "traceback": f"{kind}: {message}" if kind else trimmed_traceback(exc),
        },
    }


class Runtime:
    def __init__(self, output: CappedText) -> None:
        self.output = output
        self.module = types.ModuleType(STUDENT_MODULE)
        self.module.__dict__["get_ipython"] = lambda: _IPythonStub()
        sys.modules[STUDENT_MODULE] = self.module
        self.handles: dict[int, Any] = {}
        self.next_handle = 1
        self.device = _grading_device()
        self.future_flags = 0

    # -- requests -------------------------------------------------------------
    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ping":
            return {"ok": True}
        if op == "exec":
            return self.exec_cell(request)
        if op == "defined":
            return self.defined()
        if op == "call":
            return self.call(request)
        if op == "construct":
            return self.construct(request)
        if op == "load_model":
            return self.load_model(request)
        if op == "release":
            for handle in request.get("handles", []):
                self.handles.pop(handle.id, None)
            return {"ok": True}
        return {"ok": False, "error": {"type": "ProtocolError", "message": f"unknown op {op!r}"}}

    def exec_cell(self, request: dict[str, Any]) -> dict[str, Any]:
        report = self.run_cell(int(request["index"]), str(request["source"]))
        report["ok"] = True
        return report

    def defined(self) -> dict[str, Any]:
        names = sorted(k for k in self.module.__dict__ if not k.startswith("__"))
        return {"ok": True, "names": names}

    def run_cell(self, index: int, source: str) -> dict[str, Any]:
        """Run one cell statement by statement.

        A statement that fails is reported and the cell goes on with the next one, so
        a failing `import` or demo call at the top of a cell does not cost the student
        the functions defined below it. Only the first failure of the cell is reported.
        """
        filename = f"<cell {index}>"
        try:
            tree = compile(
                source,
                filename,
                "exec",
                flags=ast.PyCF_ONLY_AST | self.future_flags,
                dont_inherit=True,
            )
        except (SyntaxError, ValueError) as exc:
            return {"index": index, "status": "syntax_error", "message": _syntax_message(exc)}
        first_error = ""
        for statement in tree.body:
            try:
                code = compile(
                    ast.Module(body=[statement], type_ignores=[]),
                    filename,
                    "exec",
                    flags=self.future_flags,
                    dont_inherit=True,
                )
                exec(code, self.module.__dict__)
            except SystemExit as exc:
                message = (
                    f"line {statement.lineno} called exit({exc.code!r}); that statement was skipped"
                )
            except BaseException as exc:  # any student failure is reported
                message = trimmed_traceback(exc)
            else:
                self._note_future(statement)
                continue
            first_error = first_error or message
        if first_error:
            return {"index": index, "status": "error", "message": first_error}
        return {"index": index, "status": "ok", "message": ""}

    def _note_future(self, statement: ast.stmt) -> None:
        """`from __future__ import annotations` must keep applying to later statements."""
        if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
            for alias in statement.names:
                feature = getattr(__future__, alias.name, None)
                if feature is not None:
                    self.future_flags |= feature.compiler_flag

    def resolve(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor) and self.device != "cpu":
            return value.to(self.device)
        if isinstance(value, Handle):
            if value.id not in self.handles:
                raise LookupError(f"no object with handle {value.id}")
            return self.handles[value.id]
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def lookup(self, target: Any) -> Any:
        if isinstance(target, Handle):
            return self.resolve(target)
        if not isinstance(target, str) or not target.isidentifier():
            raise LookupError(f"bad target {target!r}")
        if target not in self.module.__dict__:
            raise NameError(f"name '{target}' is not defined by the submission")
        return self.module.__dict__[target]

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            func = self.lookup(request["target"])
            if request.get("method"):
                func = getattr(func, request["method"])
            args = self.resolve(request.get("args", []))
            kwargs = self.resolve(request.get("kwargs", {}))
            snapshots = _snapshot(args, kwargs)
            _seed(request.get("seed"), self.device)
            value = func(*args, **kwargs)
            mutated = _mutated(snapshots, args, kwargs)
            if request.get("keep"):
                return {"ok": True, "value": self._store(value), "mutated": mutated}
            return {"ok": True, "value": _plain(value), "mutated": mutated}
        except BaseException as exc:
            return error_reply(exc)

    def construct(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            name = request["name"]
            if request.get("source") == "public":
                module_name, _, class_name = name.partition(":")
                cls = getattr(importlib.import_module(module_name), class_name)
            else:
                cls = self.lookup(name)
            _seed(request.get("seed"), self.device)
            args = self.resolve(request.get("args", []))
            obj = cls(*args, **self.resolve(request.get("kwargs", {})))
            state = request.get("state")
            if state is not None:
                obj.load_state_dict(state)
            if request.get("eval"):
                obj.eval()
            if self.device != "cpu" and isinstance(obj, torch.nn.Module):
                obj = obj.to(self.device)
            return {"ok": True, "value": self._store(obj)}
        except BaseException as exc:
            return error_reply(exc)

    def load_model(self, request: dict[str, Any]) -> dict[str, Any]:
        from worker.sandbox import model_loading

        try:
            model = model_loading.load(request)
            if self.device != "cpu" and isinstance(model, torch.nn.Module):
                model = model.to(self.device)
            return {"ok": True, "value": self._store(model)}
        except BaseException as exc:
            return error_reply(exc)

    def _store(self, obj: Any) -> Handle:
        handle = Handle(self.next_handle)
        self.next_handle += 1
        self.handles[handle.id] = obj
        return handle


def _grading_device() -> str:
    """'cuda' when the grader asked for the GPU and this sandbox can see one.

    CUDA is initialised here, in the sandbox, never in the zygote. TF32 is switched
    off so that GPU answers meet the same tolerances as CPU ones.
    """
    if os.environ.get("AUTOGRADER_SANDBOX_DEVICE") != "cuda":
        return "cpu"
    try:
        if not torch.cuda.is_available():
            return "cpu"
    except Exception:
        return "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return "cuda"


def _syntax_message(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f"line {exc.lineno}" if exc.lineno else "somewhere"
        return f"SyntaxError at {where}: {exc.msg}" + (
            f"\n    {exc.text.rstrip()}" if exc.text else ""
        )
    return f"{type(exc).__name__}: {exc}"


def _seed(seed: Any, device: str) -> None:
    """Seed the generators a call can draw from, as torch.manual_seed would.

    Not torch.manual_seed itself: with CUDA not initialised (always, in a CPU
    sandbox) it queues a CUDA seeding together with a formatted stack trace, ~0.6 ms
    per call in the sandbox, the largest cost of a small call's round trip.
    """
    if isinstance(seed, int):
        torch.default_generator.manual_seed(seed)
        if device != "cpu":
            torch.cuda.manual_seed_all(seed)


def _plain(value: Any) -> Any:
    """Make a return value encodable: containers are walked, torch.Size becomes a tuple."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _tensors(args: Any, kwargs: Any) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []

    def walk(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, list | tuple):
            for item in v:
                walk(item)
        elif isinstance(v, dict):
            for item in v.values():
                walk(item)

    walk(args)
    walk(kwargs)
    return found


def _snapshot(args: Any, kwargs: Any) -> list[torch.Tensor]:
    return [t.detach().clone() for t in _tensors(args, kwargs)]


def _mutated(snapshots: list[torch.Tensor], args: Any, kwargs: Any) -> list[int]:
    changed = []
    for i, (before, now) in enumerate(zip(snapshots, _tensors(args, kwargs), strict=False)):
        try:
            same = before.shape == now.shape and bool(torch.equal(before, now.detach()))
        except Exception:
            same = False
        if not same:
            changed.append(i)
    return changed


def serve(
    read_fd: int,
    write_fd: int,
    public_dirs: list[str],
    reply_limit: int = REPLY_LIMITS.max_frame_bytes,
) -> None:
    """Answer requests until the grader closes the pipe.

    A reply larger than the grader accepts (`reply_limit`) is replaced by an error
    reply that says so: an honest submission learns why, and the grader is never sent
    a frame it would have to refuse.
    """
    for directory in public_dirs:
        if directory not in sys.path:
            sys.path.insert(0, directory)
    rfile = os.fdopen(read_fd, "rb", buffering=0)
    wfile = os.fdopen(write_fd, "wb", buffering=0)
    output = CappedText(OUTPUT_LIMIT)
    sys.stdout = output
    sys.stderr = output
    builtins.input = lambda *a, **k: ""  # a notebook's input() must not hang the sandbox
    torch.set_num_threads(1)
    runtime = Runtime(output)
    server = os.getpid()
    while True:
        try:
            request = read_frame(rfile, REQUEST_LIMITS)
        except EOFError:
            return
        reply = runtime.handle(request)
        if os.getpid() != server:
            # A process the student forked came back here: it must never answer (its
            # replies would be read as the sandbox's), only end.
            os._exit(0)
        reply["seq"] = request.get("seq")
        reply["output"] = output.take()
        try:
            data = frame(reply, reply_limit)
        except FrameTooLarge as exc:
            data = frame(error_reply(exc, VALUE_TOO_LARGE) | {"seq": reply["seq"]})
        except (TypeError, ValueError, OverflowError) as exc:
            data = frame(error_reply(exc) | {"seq": reply["seq"]})
        view = memoryview(data)
        while view:
            view = view[wfile.write(view) or 0 :]


def main() -> None:
    """Entry point for a plain child process: fds and public dirs come as arguments."""
    read_fd, write_fd = int(sys.argv[1]), int(sys.argv[2])
    public_dirs = [p for p in sys.argv[3:] if Path(p).is_dir()]
    # C-level writes to fd 1/2 must not reach the worker's logs unbounded.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    reply_limit = int(os.environ.pop("AUTOGRADER_SANDBOX_REPLY_BYTES", "0") or 0)
    serve(read_fd, write_fd, public_dirs, reply_limit or REPLY_LIMITS.max_frame_bytes)


if __name__ == "__main__":
    main()
