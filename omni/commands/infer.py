"""The inference commands: ``omni chat``, ``omni asr``, ``omni tts`` and ``omni mufun``.

Each loads trained weights strictly (:func:`omni.exports.load_stage`:
a missing or mismatched checkpoint is an error naming the folder and files,
never an untrained model) and calls one package pipeline:

    omni chat     omni_sft export (OmniModel) or, with --text-only, the thinker export → omni.pipelines.chat.chat
    omni asr      audio export (ASRModel)                                            → ASRModel.transcribe
    omni tts      talker + codec (+ vocoder) exports                                 → omni.pipelines.tts.speak
    omni mufun    local Whisper, Qwen3 and connector checkpoints                     → MuFunModel.generate

The argparse wiring is in omni/cli.py; ``infer/<name>.py`` runs the same code as a script.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch

from omni.nn.compiled import compile_announcement, compile_blocks
from omni.exports import default_folder, load_stage
from omni.generation.sampling import SamplingConfig
from omni.device import resolve_device, resolve_precision

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}   # --dtype


def _sampling(args) -> SamplingConfig:
    """--greedy wins over --temperature; top-k / top-p only matter when sampling."""
    return SamplingConfig(temperature=0.0 if args.greedy else args.temperature, top_k=args.top_k,
                          top_p=args.top_p, max_new_tokens=args.max_tokens)


def _autocast(args, device: torch.device):
    """--dtype of chat, asr and tts: (context, name). The weights stay fp32; autocast runs the matmuls
    in bf16/fp16. ``auto`` is the training loop's choice (:func:`resolve_precision`): fp32 on the CPU."""
    name = resolve_precision(args.dtype, device)
    if name == "fp32":
        return contextlib.nullcontext(), name
    return torch.autocast(device_type=device.type, dtype=DTYPES[name]), f"{name} autocast"


def _say(text: str) -> None:
    """Progress and summaries go to stderr, so stdout holds only the answer / transcript."""
    print(text, file=sys.stderr, flush=True)


def _announce_compile(args, command: str) -> None:
    """With --compile, say so first (the blocks are compiled once the model is loaded)."""
    if args.compile:
        _say(compile_announcement(command))


# ---------------------------------------------------------------------------
# omni chat
# ---------------------------------------------------------------------------
def cmd_chat(args) -> int:
    from omni.audio.tiny_mel import log_mel_file
    from omni.images import load_image
    from omni.pipelines.chat import chat, converse

    images, audios = args.image or [], args.audio or []
    stage = "thinker" if args.text_only else "omni_sft"
    if args.text_only and (images or audios):
        raise ValueError("--text-only uses the Thinker alone; it cannot take --image or --audio")
    if args.text_only and len(args.question) > 1:
        raise ValueError("--text-only answers one question; a conversation needs the omni_sft checkpoint")
    sampling = _sampling(args)                                # bad sampling options fail before loading
    _announce_compile(args, "omni chat")
    if args.fast_decode:
        _say("[fast-decode] omni chat: decode steps through omni.nn.fast_decode (a weight snapshot laid out for "
             "one-row products; fp32 only, same tokens as the eager blocks)")
    device = resolve_device(args.device)
    precision, precision_name = _autocast(args, device)
    loaded = load_stage(stage, args.ckpt or default_folder(stage), device)
    if args.compile:
        compile_blocks(loaded.model)
    size = None if args.text_only else loaded.model.cfg.vision.image_size     # what ViTTiny was trained on
    pixels = [load_image(p, size=size) for p in images]       # each (3, S, S); S = 224 in the seed
    mels = [log_mel_file(p)[0] for p in audios]               # each (F, 128)
    _say(f"[chat] {stage} checkpoint {loaded.folder} on {device} ({precision_name})")

    questions = args.question

    def show(turn: int, piece: str) -> None:
        print(piece, end="", flush=True)

    def header(turn: int) -> None:                  # a conversation: "> question" above each answer
        if len(questions) > 1:
            print(("\n" if turn else "") + f"> {questions[turn]}", flush=True)

    with precision:
        if args.text_only:
            results = [chat(loaded.model, loaded.tokenizer, questions[0], sampling=sampling, seed=args.seed,
                            on_text=lambda piece: show(0, piece), fast=args.fast_decode)]
        else:
            results = converse(loaded.model, loaded.tokenizer, questions, images=pixels, mels=mels,
                               sampling=sampling, seed=args.seed, on_text=show, on_turn=header,
                               fast=args.fast_decode)
    print(flush=True)
    for turn, result in enumerate(results, 1):
        _say(f"[chat] {f'turn {turn}: ' if len(results) > 1 else ''}{len(result.ids)} tokens, stopped by "
             f"{result.stop_reason}; prompt: {result.layout}")
    return 0


# ---------------------------------------------------------------------------
# omni asr
# ---------------------------------------------------------------------------
def cmd_asr(args) -> int:
    from omni.audio.tiny_mel import FRAMES_PER_SECOND, log_mel_file

    _announce_compile(args, "omni asr")
    device = resolve_device(args.device)
    precision, precision_name = _autocast(args, device)
    loaded = load_stage("audio", args.ckpt or default_folder("audio"), device)
    if args.compile:
        compile_blocks(loaded.model)
    mel = log_mel_file(args.audio).to(device)                             # (1, F, 128)
    lengths = torch.tensor([mel.shape[1]], device=device)                 # (1,)
    with torch.no_grad(), precision:
        text = loaded.model.transcribe(mel, lengths)[0]
    print(text)
    _say(f"[asr] {mel.shape[1] / FRAMES_PER_SECOND:.2f} s of audio, audio checkpoint {loaded.folder} "
         f"({precision_name})")
    return 0


# ---------------------------------------------------------------------------
# omni tts
# ---------------------------------------------------------------------------
VOCODERS = ("griffin-lim", "learned")       # omni tts --vocoder


def choose_vocoder(choice: str | None, folder: str | Path | None, device) -> tuple[object, str]:
    """(vocoder, announcement) for ``omni tts --vocoder CHOICE [--vocoder-ckpt FOLDER]``.

    No choice: the learned vocoder when its export (FOLDER, default checkpoints/vocoder/export) is
    complete, Griffin-Lim otherwise. "learned" with no export is an error naming the folder.
    """
    from omni.audio.griffin_lim import VocoderConfig
    from omni.exports import missing_files

    if choice is not None and choice not in VOCODERS:
        raise ValueError(f"--vocoder must be one of {', '.join(VOCODERS)}, got {choice!r}")
    folder = Path(folder) if folder is not None else default_folder("vocoder")
    if choice == "griffin-lim":
        return VocoderConfig(), "[tts] vocoder: Griffin-Lim (--vocoder griffin-lim)"
    if choice is None and missing_files("vocoder", folder):
        return VocoderConfig(), (f"[tts] vocoder: Griffin-Lim (no learned vocoder at {folder}; "
                                 f"`omni train vocoder` makes one)")
    loaded = load_stage("vocoder", folder, device, flag="--vocoder-ckpt")      # strict; an error if absent
    why = "--vocoder learned" if choice else "its export exists"
    return loaded.model, f"[tts] vocoder: learned, {folder} ({why})"


def cmd_tts(args) -> int:
    from omni.audio.speech_mel import SpeechMelConfig
    from omni.pipelines.tts import speak

    device = resolve_device(args.device)
    vocoder, announcement = choose_vocoder(args.vocoder, args.vocoder_ckpt, device)
    _say(announcement)                                      # the first line: which vocoder speaks
    _announce_compile(args, "omni tts")
    precision, precision_name = _autocast(args, device)
    talker = load_stage("talker", args.talker or default_folder("talker"), device, flag="--talker")
    if args.compile:
        compile_blocks(talker.model)                        # the codec is an RVQ: no blocks, stays eager
    codec = load_stage("codec", args.codec or default_folder("codec"), device, flag="--codec")
    mel_cfg = SpeechMelConfig()
    with precision:
        result = speak(args.text, talker.tokenizer, talker.model, codec.model, args.out, mel_cfg=mel_cfg,
                       vocoder=vocoder)
    frames = result.codes.shape[1] - 1                          # the zero start frame is not generated
    print(f"wrote {args.out}: {result.wave.numel() / mel_cfg.sample_rate:.2f} s "
          f"({frames} frames, stopped by {result.stop_reason})")
    _say(f"[tts] talker {talker.folder}, codec {codec.folder} ({precision_name})")
    return 0


# ---------------------------------------------------------------------------
# omni mufun
# ---------------------------------------------------------------------------
def cmd_mufun(args) -> int:
    from omni.audio.io import load_audio
    from omni.mufun.fusion import AUDIO_MARKER, tokenize_with_audio
    from omni.mufun.loading import load_mufun, load_tokenizer, missing_files
    from omni.pipelines.chat import TextStream

    missing = missing_files(args.whisper, args.qwen, args.connector, args.tokenizer)
    if missing:
        raise FileNotFoundError("omni mufun runs only on local checkpoints (it never downloads); missing:\n  "
                                + "\n  ".join(missing))
    if not Path(args.audio).is_file():
        raise FileNotFoundError(f"audio file not found: {args.audio}")
    device = resolve_device(args.device)
    dtype = DTYPES[args.dtype] if args.dtype != "auto" else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    _say(f"[mufun] loading {args.whisper} + {args.connector} + {args.qwen} ({dtype}, {device})")
    model = load_mufun(args.whisper, args.qwen, args.connector, feature_layers=tuple(args.feature_layers),
                       pool_stride=args.pool_stride, dtype=dtype, device=device).eval()
    tok = load_tokenizer(args.tokenizer or args.qwen)
    eos_id = tok.token_to_id(args.eos)
    if eos_id is None:
        raise ValueError(f"the tokenizer has no {args.eos!r} token (pass --eos with its end-of-text token)")

    question = args.question if AUDIO_MARKER in args.question else f"{AUDIO_MARKER}\n{args.question}"
    if question.count(AUDIO_MARKER) != 1:
        raise ValueError(f"the question has {question.count(AUDIO_MARKER)} {AUDIO_MARKER} markers; "
                         f"omni mufun takes one --audio, so use one marker (or none: it is put first)")
    ids = torch.tensor(tokenize_with_audio(question, lambda s: tok.encode(s, add_special_tokens=False).ids),
                       device=device)                                                    # (T,) with -200
    wave = load_audio(args.audio)                                                        # (T,) 16 kHz
    segment = tuple(args.segment) if args.segment else None
    mels = model.mels(wave, segment=segment).to(device)                                  # (N, F, 3000)
    _say(f"[mufun] {mels.shape[0]} chunk(s) × {model.cfg.tokens_per_chunk} = "
         f"{mels.shape[0] * model.cfg.tokens_per_chunk} audio tokens")
    stream = TextStream(tok, lambda piece: print(piece, end="", flush=True))   # tokenizers' decode(ids) fits
    gen = torch.Generator(device=device).manual_seed(args.seed)
    out = model.generate(ids, [mels], sampling=_sampling(args), eos_id=eos_id, generator=gen, on_token=stream)
    stream.flush()
    print(flush=True)
    _say(f"[mufun] {out.tokens.shape[1]} tokens, stopped by {out.stop_reason}")
    return 0
