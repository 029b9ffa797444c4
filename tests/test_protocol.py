"""The grader-sandbox protocol on its own: encoding, the bounded decoder, reply schemas."""

from __future__ import annotations

import io
import struct

import msgpack
import numpy as np
import pytest
import torch

from protocol import text
from protocol.codec import DecodeError, Handle, Unsupported, decode, encode, is_attached
from protocol.frames import FrameTooLarge, frame
from protocol.limits import REPLY_LIMITS, DecodeLimits
from protocol.messages import Op, ProtocolViolation, parse_ready, parse_reply

pytestmark = pytest.mark.fast

SMALL = DecodeLimits(
    max_frame_bytes=1 << 20, max_depth=8, max_container_len=1000, max_items=5000, max_str_len=1000
)


def roundtrip(value: object, limits: DecodeLimits = REPLY_LIMITS) -> object:
    return decode(encode(value), limits)


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        torch.float64,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.uint8,
        torch.bool,
    ],
)
def test_tensors_cross_unchanged(dtype: torch.dtype) -> None:
    value = (torch.arange(12).reshape(3, 4) % 3).to(dtype)
    back = roundtrip({"v": [value.t(), value[0, 0]]})
    assert isinstance(back, dict)
    assert back["v"][0].dtype == dtype and torch.equal(back["v"][0], value.t())
    assert back["v"][1].shape == ()


def test_what_cannot_cross_arrives_as_unsupported_not_as_code() -> None:
    class Liar(torch.Tensor):
        def __eq__(self, other: object) -> bool:  # type: ignore[override]
            return True

    lie = roundtrip(torch.zeros(2).as_subclass(Liar))
    assert type(lie) is torch.Tensor
    odd = roundtrip(object())
    assert isinstance(odd, Unsupported) and odd.type_name == "builtins.object"
    assert roundtrip(Handle(7)) == Handle(7)
    assert roundtrip(torch.Size([2, 3])) == (2, 3)
    assert isinstance(roundtrip(np.array(["a"], dtype=object)), Unsupported)


def test_a_tensor_attached_to_a_graph_says_so() -> None:
    weight = torch.ones(3, requires_grad=True)
    attached = roundtrip(weight * 2)
    detached = roundtrip((weight * 2).detach())
    assert is_attached(attached) and not is_attached(detached)
    assert isinstance(attached, torch.Tensor) and not attached.requires_grad


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xc1\xc1\xc1", "not msgpack"),
        (encode({"x": 1})[:-1], "truncated"),
        (encode(1) + encode(2), "after its value"),
        (b"\x91" * 100 + b"\xc0", "deeper than 8"),
        (msgpack.packb(list(range(2000))), "more than 1000 values"),
        (msgpack.packb([[]] * 900 + [[[]] * 900] * 5 + [[]] * 50), "more than 5000 values"),
        (msgpack.packb("x" * 2000), "over 1000 bytes"),
        (msgpack.packb(msgpack.ExtType(42, b"")), "unknown extension type"),
        (msgpack.packb(msgpack.ExtType(5, b"\x00")), "8 bytes"),
        (msgpack.packb({1: 2}), "undecodable"),
    ],
)
def test_hostile_documents_are_refused_with_a_sentence(data: bytes, words: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data, SMALL)
    assert words in str(info.value)


def _tensor_document(*payload: object) -> bytes:
    return msgpack.packb(msgpack.ExtType(1, msgpack.packb(list(payload), use_bin_type=True)))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_tensor_document("complex64", [1], b"\x00" * 8), "dtype 'complex64' is not accepted"),
        (_tensor_document("float32", [2, 2], b"\x00" * 12), "does not hold 12 bytes"),
        (_tensor_document("float32", [-1], b""), "short list of sizes"),
        (_tensor_document("float32", [1.5], b"\x00" * 4), "short list of sizes"),
        (_tensor_document("float32", [1] * 65, b"\x00" * 4), "short list of sizes"),
        (_tensor_document("float32", [1], "abcd"), "data is not bytes"),
        (_tensor_document("float32", [1]), "not [dtype, shape, bytes]"),
        (_tensor_document("int64", [2**62, 2**62], b""), "does not hold 0 bytes"),
        # A safetensors payload (the format tensors had before): not a tensor document.
        (msgpack.packb(msgpack.ExtType(1, b"\x08" + b"\x00" * 7 + b"{}")), "undecodable"),
    ],
)
def test_a_forged_tensor_is_refused_before_any_tensor_exists(data: bytes, words: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data, REPLY_LIMITS)
    assert words in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        torch.randn(3, 4),
        torch.randn(2, 3, dtype=torch.float64).T,  # not contiguous
        torch.arange(12).reshape(3, 4)[:, 1],
        torch.tensor(7, dtype=torch.int16),
        torch.zeros(0, 5),
        torch.randn(4).to(torch.bfloat16),
        torch.tensor([True, False, True]),
        torch.tensor([1, 255], dtype=torch.uint8),
    ],
)
def test_tensors_cross_with_their_dtype_shape_and_values(value: torch.Tensor) -> None:
    back = roundtrip(value)
    assert isinstance(back, torch.Tensor)
    assert back.dtype == value.dtype and back.shape == value.shape
    assert torch.equal(back, value)
    back.zero_()  # a decoded tensor is the grader's own, writable copy


def test_a_bool_tensor_from_any_nonzero_byte_holds_true() -> None:
    decoded = decode(_tensor_document("bool", [3], b"\x00\x02\xff"), REPLY_LIMITS)
    assert decoded.tolist() == [False, True, True]


def test_tuples_inside_tuples_count_toward_depth_without_recursing() -> None:
    inner = msgpack.packb(None)
    for _ in range(100_000):  # once enough to overflow the C stack of a recursive decoder
        inner = msgpack.packb([msgpack.ExtType(2, inner)])
    with pytest.raises(DecodeError, match="deeper than"):
        decode(msgpack.packb(msgpack.ExtType(2, inner)), REPLY_LIMITS)
    shallow = encode(((1, (2, 3)), [4]))
    assert decode(shallow, SMALL) == ((1, (2, 3)), [4])


def test_a_frame_over_the_cap_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(DecodeError, match="over the limit"):
        decode(b"\xc0" * (SMALL.max_frame_bytes + 1), SMALL)
    with pytest.raises(FrameTooLarge):
        frame(b"x" * 2000, limit=1000)
    size = struct.unpack(">I", frame([1, 2])[:4])[0]
    assert size == len(encode([1, 2]))


def test_numpy_arrays_of_items_without_size_are_refused() -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros(10, dtype="V0"))
    with pytest.raises(DecodeError):
        decode(msgpack.packb(msgpack.ExtType(3, buf.getvalue())), REPLY_LIMITS)
    assert (roundtrip(np.arange(4)) == np.arange(4)).all()  # type: ignore[union-attr]


def test_replies_are_validated_per_operation() -> None:
    good = parse_reply(Op.CALL, 3, {"ok": True, "seq": 3, "value": 1.5, "mutated": [0]})
    assert good.value == 1.5 and good.mutated == (0,)
    failure = parse_reply(
        Op.CALL, 3, {"ok": False, "seq": 3, "error": {"type": "ValueError", "message": "m"}}
    )
    assert failure.failure is not None and failure.failure.type == "ValueError"
    for raw, words in [
        (5, "type int"),
        ({"event": "ready"}, "event"),
        ({"ok": True, "seq": 4}, "out of turn"),
        ({"ok": True, "seq": True}, "out of turn"),
        ({"ok": 1, "seq": 3}, "true/false"),
        ({"ok": False, "seq": 3, "error": "x"}, "not a map"),
        ({"ok": False, "seq": 3, "error": {"type": 3}}, "type name"),
        ({"ok": True, "seq": 3, "mutated": {"a": 1}}, "changed inputs"),
        ({"ok": True, "seq": 3, "output": b"bytes"}, "not text"),
    ]:
        with pytest.raises(ProtocolViolation, match=words):
            parse_reply(Op.CALL, 3, raw)
    with pytest.raises(ProtocolViolation, match="handle"):
        parse_reply(Op.CONSTRUCT, 1, {"ok": True, "seq": 1, "value": 3})
    with pytest.raises(ProtocolViolation, match="cell report"):
        parse_reply(Op.EXEC, 1, {"ok": True, "seq": 1, "index": "1", "status": "ok"})
    with pytest.raises(ProtocolViolation, match="a name"):
        parse_reply(Op.DEFINED, 1, {"ok": True, "seq": 1, "names": ["x" * 500]})


def test_every_string_of_a_reply_is_cleaned_and_capped() -> None:
    huge = "A\x00\ud800" * 100_000
    reply = parse_reply(
        Op.CALL,
        1,
        {
            "ok": False,
            "seq": 1,
            "output": huge,
            "error": {"type": huge, "message": huge, "traceback": huge},
        },
    )
    assert reply.failure is not None
    for value in (reply.output, reply.failure.type, reply.failure.message, reply.failure.traceback):
        assert "\x00" not in value and len(value) <= 16_000
        value.encode("utf-8")
    ready = parse_ready(
        {
            "event": "ready",
            "isolation": huge,
            "stamps": {"a": 1.0, "b": "x"},
            "problems": [huge] * 100,
        }
    )
    assert len(ready.isolation) <= 255 and ready.stamps == {"a": 1.0}
    assert len(ready.problems) <= 20
    with pytest.raises(ProtocolViolation, match="boom"):
        parse_ready({"event": "failed", "error": "boom"})


def test_clean_keeps_short_text_and_cuts_long_text() -> None:
    assert text.clean("plain", 10) == "plain"
    assert text.clean("a\x00b", 10) == "ab"
    cut = text.clean("x" * 100, 20)
    assert len(cut) == 20 and cut.endswith("[...]")
    tail = text.clean_tail("start " + "y" * 100 + " the end", 30)
    assert tail.endswith("the end") and len(tail) <= 30
