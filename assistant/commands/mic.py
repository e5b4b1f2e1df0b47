"""`assistant mic`: stream the local microphone to the server (sounddevice), print events.

Speak; each pause of about half a second ends an utterance and its answer is printed.
Ctrl-C ends the session (the last utterance is still answered).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from assistant.commands.replay import (
    LIVE_FRAME_MS,
    add_client_options,
    printer,
    stream_session,
)
from assistant.errors import UserError

RATE = 16_000


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "mic",
        help="stream the microphone to the server, print events",
        description="Stream the default (or --device) microphone to `assistant serve`.",
    )
    add_client_options(p)
    p.add_argument(
        "--device", default=None, help="input device name or index (default: system default)"
    )
    p.add_argument(
        "--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)"
    )
    p.set_defaults(func=run)


def open_sounddevice():
    """Import sounddevice lazily: it needs the PortAudio library, which servers rarely have."""
    try:
        import sounddevice
    except ImportError as error:
        raise UserError(
            "the microphone client needs sounddevice: pip install 'retail-assistant[mic]'"
        ) from error
    except OSError as error:  # sounddevice is there, libportaudio is not
        raise UserError(
            f"PortAudio is missing ({error}); install it (Debian/Ubuntu: apt install libportaudio2)"
        ) from error
    return sounddevice


def check_input_device(sd, device) -> None:
    try:
        info = sd.query_devices(device, kind="input")
    except Exception as error:  # sounddevice raises ValueError / PortAudioError
        raise UserError(
            f"no usable microphone ({error}); plug one in or pick one with --device"
        ) from error
    if not info or info.get("max_input_channels", 0) < 1:
        raise UserError("the selected device has no input channels; pick one with --device")


async def mic_frames(sd, device, seconds: float, stop: asyncio.Event):
    """PCM16 frames of LIVE_FRAME_MS from the microphone until `stop` is set or `seconds` pass."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000 // LIVE_FRAME_MS)  # 10 s

    def callback(indata, frames, time_info, status):  # PortAudio thread
        loop.call_soon_threadsafe(_offer, queue, bytes(indata))

    device = int(device) if isinstance(device, str) and device.isdigit() else device
    with sd.RawInputStream(
        samplerate=RATE,
        channels=1,
        dtype="int16",
        blocksize=RATE * LIVE_FRAME_MS // 1000,
        device=device,
        callback=callback,
    ):
        began = loop.time()
        while not stop.is_set() and (seconds <= 0 or loop.time() - began < seconds):
            try:
                yield await asyncio.wait_for(queue.get(), 0.5)
            except TimeoutError:
                continue


def _offer(queue: asyncio.Queue, data: bytes) -> None:
    if not queue.full():  # drop rather than block the audio thread
        queue.put_nowait(data)


def run(args: argparse.Namespace) -> int:
    sd = open_sounddevice()
    check_input_device(
        sd, int(args.device) if args.device and args.device.isdigit() else args.device
    )

    async def main() -> int:
        stop = asyncio.Event()
        try:
            import signal

            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
        if not args.json:
            print("listening; speak, pause to get an answer, Ctrl-C to finish", file=sys.stderr)
        log = await stream_session(
            args.url,
            mic_frames(sd, args.device, args.seconds, stop),
            sample_rate=RATE,
            language=args.language,
            store=args.store,
            token=args.token,
            on_event=printer(args.json),
        )
        return 1 if log.errors else 0

    return asyncio.run(main())
