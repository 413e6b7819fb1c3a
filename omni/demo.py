"""``omni demo`` (``make demo``): the main job, end to end, on one machine.

    1. world      build the small synthetic world (or reuse one)
    2. train      every stage with its short preset, or reuse checkpoints already there
    3. evaluate   every stage on the held-out split: one table
    4. pipelines  text chat, image QA, ASR, audio QA, a multimodal question, TTS to a wav
                  file, and the full-size MuFun dry run, each with its shape trace
    5. report     runs/demo/report.md with the pictures, sounds, traces and the table

Stages train in this process, in dependency order (the codec before the Talker;
the Thinker and the encoders before the omni fine-tuning), through the same
scripts ``omni train <stage>`` runs. ``--smoke`` is the seconds-long variant the
tests run: a tiny world, the smoke presets, checkpoints under the output folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from omni import trace
from omni.demo_args import add_demo_arguments
from omni.evaluation import Metric, format_table, metrics_to_json
from omni.generation.sampling import SamplingConfig
from omni.stages import STAGES

STAGE_ORDER = tuple(name for name in STAGES if name != "mufun")   # MuFun is traced at full size, not trained
TEXT_STAGES = ("vision", "talker", "omni_sft")   # take the Thinker's tokenizer
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=24)       # every chat in the pipelines section


@dataclass
class DemoPlan:
    out: Path                    # runs/demo
    world: Path                  # the synthetic world folder
    world_size: str              # small | tiny
    ckpt_root: Path              # checkpoints/ (or <out>/checkpoints with --smoke)
    preset: str                  # demo | smoke
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def export(self, stage: str) -> Path:
        return self.ckpt_root / stage / "export"


def say(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# 1. the world
# ---------------------------------------------------------------------------
def build_world(plan: DemoPlan) -> None:
    from omni.data.synth import GENERATOR_VERSION, build

    if (plan.world / "card.json").is_file():
        card = json.loads((plan.world / "card.json").read_text())
        if card.get("size") == plan.world_size and card.get("generator") == GENERATOR_VERSION:
            say(f"[world] reusing {plan.world} ({plan.world_size}, {GENERATOR_VERSION})")
            return
        raise RuntimeError(f"{plan.world} holds a {card.get('size')!r} world made by {card.get('generator')!r}; "
                           f"the demo wants {plan.world_size!r} from {GENERATOR_VERSION!r}: remove it (rebuilding "
                           f"takes seconds) or pass --world DIR")
    say(f"[world] building the {plan.world_size} synthetic world in {plan.world}")
    build(plan.world, size=plan.world_size, seed=0)


# ---------------------------------------------------------------------------
# 2. training
# ---------------------------------------------------------------------------
def stage_argv(stage: str, plan: DemoPlan) -> list[str]:
    argv = ["--preset", plan.preset, "--data", str(plan.world),
            "--out", str(plan.ckpt_root / stage), "--device", plan.device]
    if stage in TEXT_STAGES:
        argv += ["--tokenizer", str(plan.export("thinker") / "tokenizer.model")]
    if stage == "talker":
        argv += ["--codec", str(plan.export("codec"))]
    if stage == "omni_sft":
        argv += ["--thinker", str(plan.export("thinker")), "--audio", str(plan.export("audio")),
                 "--vision", str(plan.export("vision"))]
    return argv


def train_all(plan: DemoPlan) -> None:
    for stage in STAGE_ORDER:
        if (plan.export(stage) / "model.safetensors").is_file():
            say(f"[train] {stage}: reusing {plan.export(stage)}")
            plan.notes.append(f"{stage}: reused the checkpoint in {plan.export(stage)}")
            continue
        argv = stage_argv(stage, plan)
        say(f"[train] {stage}: omni train {stage} {' '.join(argv)}")
        t0 = time.perf_counter()
        code = STAGES[stage].train(argv)
        if code != 0:
            raise RuntimeError(f"training stage {stage} exited with status {code}")
        plan.timings[f"train {stage}"] = time.perf_counter() - t0


# ---------------------------------------------------------------------------
# 3. evaluation
# ---------------------------------------------------------------------------
def evaluate_all(plan: DemoPlan) -> dict[str, list[Metric]]:
    from omni.commands.eval import evaluate_stage

    results = {}
    for stage in STAGE_ORDER:
        t0 = time.perf_counter()
        say(f"[eval] {stage}")
        results[stage] = evaluate_stage(stage, plan.export(stage), plan.world, "test", plan.device)
        plan.timings[f"eval {stage}"] = time.perf_counter() - t0
    return results


# ---------------------------------------------------------------------------
# 4. pipelines
# ---------------------------------------------------------------------------
@dataclass
class Section:
    title: str
    body: list[str]              # Markdown lines
    trace_file: str | None = None


def _first(world: Path, manifest: str, want=lambda row: True) -> dict:
    """The first row of ``world/manifest`` that ``want`` accepts (paths made absolute)."""
    path = world / manifest
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if want(row):
                return row
    raise RuntimeError(f"{path}: no row suitable for the demo")


def _save_trace(plan: DemoPlan, name: str, tr: trace.Tracer) -> str:
    rel = f"traces/{name}.md"
    path = plan.out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Shape trace: {name}\n\n{tr.table()}\n", encoding="utf-8")
    return rel


def run_pipelines(plan: DemoPlan) -> list[Section]:
    """Every pipeline on the trained exports, one report section each, then MuFun's full-size dry run."""
    from omni.exports import load_stage

    exports = {stage: load_stage(stage, plan.export(stage), plan.device)
               for stage in ("thinker", "omni_sft", "audio", "talker", "codec", "vocoder")}
    text = text_chat(plan, exports["thinker"])
    image, pixels = image_qa(plan, exports["omni_sft"])
    asr = speech_recognition(plan, exports["audio"])
    audio, clip_mel = audio_qa(plan, exports["omni_sft"])
    both = image_and_audio(plan, exports["omni_sft"], pixels, clip_mel)
    speech = text_to_speech(plan, exports["talker"], exports["codec"], exports["vocoder"], exports["audio"])
    return [text, image, asr, audio, both, speech, mufun_dry_run(plan)]


def text_chat(plan: DemoPlan, thinker) -> Section:
    from omni.pipelines.chat import chat

    sentence = (plan.world / "corpus_test.txt").read_text(encoding="utf-8").splitlines()[0]
    prompt = " ".join(sentence.split()[:3])
    with trace.Tracer() as tr:
        res = chat(thinker.model, thinker.tokenizer, prompt, sampling=GREEDY)
    return Section("Text chat (Thinker, seed Part 1)", [
        f"- prompt: `{prompt}` ({res.layout} tokens)", f"- continuation (greedy): `{res.text}`",
        f"- a held-out sentence that starts this way: `{sentence}`"], _save_trace(plan, "text", tr))


def image_qa(plan: DemoPlan, omni_sft) -> tuple[Section, torch.Tensor]:
    """The section, and the preprocessed image (the multimodal question asks about it again)."""
    from omni.images import load_image
    from omni.pipelines.chat import chat
    from omni.viz import image_png

    row = _first(plan.world, "image_qa_test.jsonl")
    image_path = plan.world / row["image"]
    pixels = load_image(image_path, size=omni_sft.model.cfg.vision.image_size)
    image_png(load_image(image_path), plan.out / "image.png")
    with trace.Tracer() as tr:
        res = chat(omni_sft.model, omni_sft.tokenizer, row["question"], images=[pixels], sampling=GREEDY)
    return Section("Image question answering (Part 2)", [
        "![input image](image.png)", "", f"- question: `{row['question']}`",
        f"- model: `{res.text}` · expected: `{row['answer']}` · layout: {res.layout}"],
        _save_trace(plan, "image_qa", tr)), pixels


def speech_recognition(plan: DemoPlan, asr) -> Section:
    from omni.audio.io import load_audio, save_audio
    from omni.audio.tiny_mel import log_mel
    from omni.viz import mel_png

    row = _first(plan.world, "asr_test.jsonl")
    wave = load_audio(plan.world / row["audio"])
    save_audio(plan.out / "heard.wav", wave)
    mel = log_mel(wave)                                                     # (1, F, 128)
    mel_png(mel[0], plan.out / "heard_mel.png", title="heard: tiny log-mel, 100 frames/s")
    with trace.Tracer() as tr:
        text = _transcribe(plan, asr, mel)
    return Section("Speech recognition (Part 3, CTC)", [
        "[heard.wav](heard.wav)", "", "![heard mel](heard_mel.png)", "",
        f"- transcript: `{text}`", f"- reference: `{row['text']}`"], _save_trace(plan, "asr", tr))


def audio_qa(plan: DemoPlan, omni_sft) -> tuple[Section, torch.Tensor]:
    """The section, and the clip's log-mel (the multimodal question hears it again)."""
    from omni.audio.io import load_audio, save_audio
    from omni.audio.tiny_mel import log_mel
    from omni.pipelines.chat import chat
    from omni.viz import mel_png

    row = _first(plan.world, "audio_qa_test.jsonl")
    clip = load_audio(plan.world / row["audio"])
    save_audio(plan.out / "sound.wav", clip)
    clip_mel = log_mel(clip)[0]
    mel_png(clip_mel, plan.out / "sound_mel.png", title="sound clip: tiny log-mel")
    with trace.Tracer() as tr:
        res = chat(omni_sft.model, omni_sft.tokenizer, row["question"], mels=[clip_mel], sampling=GREEDY)
    return Section("Audio question answering (Part 3)", [
        "[sound.wav](sound.wav)", "", "![sound mel](sound_mel.png)", "", f"- question: `{row['question']}`",
        f"- model: `{res.text}` · expected: `{row['answer']}` · layout: {res.layout}"],
        _save_trace(plan, "audio_qa", tr)), clip_mel


def image_and_audio(plan: DemoPlan, omni_sft, pixels: torch.Tensor, clip_mel: torch.Tensor) -> Section:
    from omni.pipelines.chat import chat

    question = "what do you see and hear?"
    with trace.Tracer() as tr:
        res = chat(omni_sft.model, omni_sft.tokenizer, question, images=[pixels], mels=[clip_mel],
                   sampling=GREEDY)
    return Section("Image + audio + text (Part 4)", [
        f"- question: `{question}` about image.png and sound.wav", f"- model: `{res.text}` · layout: {res.layout}"],
        _save_trace(plan, "multimodal", tr))


def text_to_speech(plan: DemoPlan, talker, codec, vocoder, asr) -> Section:
    """Speak a held-out line with the learned vocoder and with Griffin-Lim; the ASR model hears both back."""
    from omni.audio.griffin_lim import VocoderConfig
    from omni.audio.io import load_audio, save_audio
    from omni.audio.speech_mel import SpeechMelConfig, speech_mel
    from omni.audio.tiny_mel import log_mel
    from omni.pipelines.tts import speak, vocode
    from omni.viz import mel_png

    out, world = plan.out, plan.world
    row = _first(world, "tts_test.jsonl") if (world / "tts_test.jsonl").stat().st_size else \
        _first(world, "tts_train.jsonl")
    with trace.Tracer() as tr:
        result = speak(row["text"], talker.tokenizer, talker.model, codec.model, out / "spoken.wav",
                       vocoder=vocoder.model)                            # the learned vocoder
    mel_cfg = SpeechMelConfig()
    save_audio(out / "spoken_griffin_lim.wav", vocode(result.mel, mel_cfg, VocoderConfig()))
    original = speech_mel(load_audio(world / row["audio"]), mel_cfg)                  # (T_ref, 128)
    spoken = {name: load_audio(out / f"{name}.wav") for name in ("spoken", "spoken_griffin_lim")}
    panels = [original, result.mel.cpu(), *(speech_mel(w, mel_cfg) for w in spoken.values())]
    mel_png(stacked_mels(panels, mel_cfg), out / "spoken_mel.png",
            title="speech mels, bottom to top: original clip, Talker (RVQ decode), learned vocoder, Griffin-Lim")
    heard = {name: _transcribe(plan, asr, log_mel(wave)) for name, wave in spoken.items()}
    return Section("Text to speech (Parts 5–6)", [
        "[spoken.wav](spoken.wav) (learned vocoder) · [spoken_griffin_lim.wav](spoken_griffin_lim.wav)", "",
        "![speech mels: original, Talker, learned vocoder, Griffin-Lim](spoken_mel.png)", "",
        f"- text: `{row['text']}`", f"- {result.codes.shape[1] - 1} frames "
        f"({spoken['spoken'].numel() / mel_cfg.sample_rate:.2f} s), stopped by {result.stop_reason}",
        f"- heard back by the ASR model (learned vocoder): `{heard['spoken']}`",
        f"- heard back by the ASR model (Griffin-Lim): `{heard['spoken_griffin_lim']}`"],
        _save_trace(plan, "tts", tr))


@torch.no_grad()
def _transcribe(plan: DemoPlan, asr, mel: torch.Tensor) -> str:
    """The ASR export's greedy transcript of one tiny log-mel (1, F, T)."""
    return asr.model.transcribe(mel.to(plan.device), torch.tensor([mel.shape[1]], device=plan.device))[0]


def mufun_dry_run(plan: DemoPlan) -> Section:
    from omni.dry_run.mufun import trace_mufun

    tr = trace_mufun(seconds=180)
    rel = _save_trace(plan, "mufun", tr)
    if hasattr(tr, "weights_table"):
        (plan.out / rel).write_text((plan.out / rel).read_text() + "\n" + tr.weights_table() + "\n")
    shapes = {r.name: r.shape for r in tr.records}
    return Section("MuFun, full size, on the meta device (seeds 000–003)", [
        "A 3-minute song through Whisper-large-v3, the BLP_4i_2x connector and Qwen3-8B, traced without "
        "allocating the weights:", "",
        *(f"- `{name}`: {tuple(shapes[name])}" for name in ("features.all_chunks", "connector.linear2",
                                                         "fusion.sequence", "llm.logits") if name in shapes)],
        rel)


def stacked_mels(mels: list, mel_cfg) -> torch.Tensor:
    """Speech mels (T_i, F) on one time axis: each padded with silence to the longest, then stacked along
    the frequency axis (the first at the bottom of the picture), one silent bin between them: (T_max, n·F + n − 1)."""
    from omni.audio.speech_mel import silence_level

    T = max(m.shape[0] for m in mels)
    quiet = silence_level(mel_cfg)
    padded = [torch.cat([m.float(), torch.full((T - m.shape[0], m.shape[1]), quiet)]) for m in mels]
    gap = torch.full((T, 1), quiet)
    return torch.cat([x for m in padded for x in (m, gap)][:-1], dim=1)


# ---------------------------------------------------------------------------
# 5. report
# ---------------------------------------------------------------------------
def write_report(plan: DemoPlan, metrics: dict[str, list[Metric]], sections: list[Section]) -> Path:
    lines = ["# omni demo report", "",
             f"World: `{plan.world}` ({plan.world_size}); presets: `{plan.preset}`; checkpoints: "
             f"`{plan.ckpt_root}`; device: {plan.device}.", ""]
    lines += ["## Evaluation (held-out test split)", "",
              "The goals are the issue's targets for the `cpu` presets on the `medium` world; the demo's short "
              "presets on the `small` world are not expected to reach them (docs/training.md has the measured "
              "`cpu` figures).", "", format_table(metrics), ""]
    lines += ["## Loss curves", ""]
    for stage in STAGE_ORDER:
        png = plan.ckpt_root / stage / "loss.png"
        if png.is_file():
            shutil.copyfile(png, plan.out / f"loss_{stage}.png")
            lines += [f"### {stage}", "", f"![{stage} loss](loss_{stage}.png)", ""]
        else:
            lines += [f"### {stage}", "", f"no loss curve: {stage} was reused from {plan.export(stage)}", ""]
    for s in sections:
        lines += [f"## {s.title}", "", *s.body, ""]
        if s.trace_file:
            lines += [f"Shape trace: [{s.trace_file}]({s.trace_file})", ""]
    lines += ["## Timings", "", "| step | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in plan.timings.items()]
    if plan.notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in plan.notes)]
    path = plan.out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="omni demo", description=__doc__.splitlines()[0])
    add_demo_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    plan = DemoPlan(out=out,
                    world=Path(args.world or (out / "world" if args.smoke else "data/small")),
                    world_size="small",
                    ckpt_root=Path(args.ckpt or (out / "checkpoints" if args.smoke else "checkpoints")),
                    preset="smoke" if args.smoke else "demo", device=args.device)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    steps = [("world", lambda: build_world(plan)), ("train", lambda: train_all(plan))]
    for name, step in steps:
        t0 = time.perf_counter()
        step()
        plan.timings.setdefault(name, time.perf_counter() - t0)
    metrics = evaluate_all(plan)
    t0 = time.perf_counter()
    sections = run_pipelines(plan)
    plan.timings["pipelines"] = time.perf_counter() - t0
    plan.timings["total"] = time.perf_counter() - t_start
    report = write_report(plan, metrics, sections)
    (out / "metrics.json").write_text(metrics_to_json(metrics) + "\n", encoding="utf-8")
    say("\n" + format_table(metrics))
    say(f"\n[demo] done in {plan.timings['total']:.0f} s")
    say(f"[demo] report:      {report}")
    say(f"[demo] metrics:     {out / 'metrics.json'} (one object per table row)")
    say(f"[demo] checkpoints: {plan.ckpt_root}/<stage>/export")
    say(f"[demo] sounds:      {out / 'heard.wav'}, {out / 'sound.wav'}, {out / 'spoken.wav'}, "
        f"{out / 'spoken_griffin_lim.wav'}")
    say(f"[demo] traces:      {out / 'traces'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
