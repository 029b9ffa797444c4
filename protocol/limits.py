"""How much one reply from the sandbox may hold, checked while it is decoded."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class DecodeLimits:
    #: Bytes of one frame (header excluded). A few MB carries every answer of the
    #: bundled course; an exercise with large model outputs may ask for more.
    max_frame_bytes: int = 8 * MIB
    #: Containers inside containers, tuples and other extension payloads included.
    max_depth: int = 32
    #: Elements of one list, or pairs of one map.
    max_container_len: int = 100_000
    #: Objects in the whole frame: bounds the memory of many small containers, which
    #: cost far more once built than the bytes that describe them.
    max_items: int = 200_000
    #: Characters of one string (bytes values and tensors are bounded by the frame).
    max_str_len: int = 1 * MIB

    def with_frame_bytes(self, size: int) -> DecodeLimits:
        return DecodeLimits(
            size,
            self.max_depth,
            self.max_container_len,
            self.max_items,
            min(self.max_str_len, size),
        )


#: What the grader accepts from a sandbox unless an exercise asks for more.
REPLY_LIMITS = DecodeLimits()
#: What a sandbox accepts from the grader: trusted, but still bounded (model weights).
REQUEST_LIMITS = DecodeLimits(
    max_frame_bytes=512 * MIB,
    max_depth=64,
    max_container_len=10_000_000,
    max_items=20_000_000,
    max_str_len=64 * MIB,
)
