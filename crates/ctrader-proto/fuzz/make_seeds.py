#!/usr/bin/env python3
"""Writes the seed corpus for `frame_decoder` from the project's golden frames.

Each seed is two control bytes (cap selector, read size) followed by wire bytes: every golden
frame alone with a roomy cap, all of them back to back, the same stream in 1- and 7-byte reads,
and one frame with a cap just below its size (to reach the FrameTooLarge path).
"""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = HERE.parent.parent.parent / "testdata" / "ctrader-golden-frames.json"
OUT = HERE / "corpus" / "frame_decoder"


def main() -> None:
    frames = [(f["name"], bytes.fromhex(f["frame_hex"])) for f in json.loads(GOLDEN.read_text())]
    OUT.mkdir(parents=True, exist_ok=True)
    roomy = bytes([255])  # cap = 255 * 64 bytes
    for name, frame in frames:
        (OUT / f"golden-{name}").write_bytes(roomy + bytes([255]) + frame)
    stream = b"".join(frame for _, frame in frames)
    (OUT / "golden-all").write_bytes(roomy + bytes([255]) + stream)
    (OUT / "golden-all-1-byte-reads").write_bytes(roomy + bytes([1]) + stream)
    (OUT / "golden-all-7-byte-reads").write_bytes(roomy + bytes([7]) + stream)
    _, execution = next(f for f in frames if f[0] == "execution_event_filled")
    (OUT / "over-cap").write_bytes(bytes([len(execution) // 64 - 1, 255]) + execution)
    print(f"wrote {len(list(OUT.iterdir()))} seeds to {OUT}")


if __name__ == "__main__":
    main()
