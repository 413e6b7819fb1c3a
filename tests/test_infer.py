"""The inference commands (omni chat / asr / tts / mufun) and strict stage loading.

These tests check the plumbing, not quality: every checkpoint here is a tiny,
randomly initialised model that the test exports itself with
``omni.training.export_safetensors``, so the answers are gibberish by design.
What is asserted is that the commands load exactly those weights, run the
whole pipeline, stream what they generate, and refuse missing or mismatched
checkpoints with messages that name the folder and the files.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from omni.audio.io import save_audio
from omni.cli import main
from omni.models.asr import ASRConfig, ASRModel
from omni.models.audio_encoder import AudioEncoderConfig
from omni.models.omni_model import OmniConfig, OmniModel
from omni.models.rvq import RVQ, CodecConfig
from omni.models.talker import TalkerConfig, TalkerTiny
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.models.vocoder import VocosConfig, VocosTiny
from omni.models.vision import VisionConfig
from omni.pipelines import chat as chat_module
from omni.exports import MissingCheckpointError, load_stage
from omni.generation.generate import generate
from omni.generation.sampling import SamplingConfig
from omni.tokenizer import BPETokenizer
from omni.training import CheckpointError, export_safetensors

SENTENCES = ["the red cat sits on the old mat.", "a small dog runs in the green garden.",
             "what colour is the banana?", "there are four purple cats in the house.",
             "the blue bird sings a happy song.", "tom reads a long book by the river."]
VOCAB = 320
THINKER = dict(vocab_size=VOCAB, ctx_len=96, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64)
VOCOS = VocosConfig(dim=16, intermediate=32, n_layers=1, n_up_layers=1)


# ---------------------------------------------------------------------------
# tiny exports, made once per module
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("infer")


@pytest.fixture(scope="module")
def tokenizer(root):
    text = root / "corpus.txt"
    text.write_text("\n".join(SENTENCES * 20) + "\n")
    tok = BPETokenizer.train(text, root / "tok.model", vocab_size=VOCAB)
    assert tok.vocab_size <= VOCAB
    return tok


def export(model, cfg, folder, tokenizer=None):
    export_safetensors(model, cfg, folder)
    if tokenizer is not None:
        shutil.copyfile(tokenizer.path, folder / "tokenizer.model")
    return folder


@pytest.fixture(scope="module")
def exports(root, tokenizer):
    torch.manual_seed(0)
    thinker_cfg = ThinkerConfig(**THINKER)
    omni_cfg = OmniConfig(thinker=ThinkerConfig(**THINKER),
                          vision=VisionConfig(image_size=64, patch_size=32, d_model=32, n_layers=1, n_heads=2,
                                              ffn_hidden=64),     # not 224: chat must load images at this size
                          audio=AudioEncoderConfig(conv_channels=4, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64))
    talker_cfg = TalkerConfig(text_vocab_size=VOCAB, max_text_tokens=16, min_frames=2, max_frames=6,
                              frames_per_token=1, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64)
    codec_cfg = CodecConfig()
    return {
        "thinker": export(ThinkerLM(thinker_cfg), thinker_cfg, root / "thinker", tokenizer),
        "omni_sft": export(OmniModel(omni_cfg), omni_cfg, root / "omni_sft", tokenizer),
        "talker": export(TalkerTiny(talker_cfg), talker_cfg, root / "talker", tokenizer),
        "codec": export(RVQ(codec_cfg), codec_cfg, root / "codec"),
        "vocoder": export(VocosTiny(VOCOS), VOCOS, root / "vocoder"),
    }


@pytest.fixture(scope="module")
def media(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    image = root / "picture.png"
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(image)
    clip = root / "clip.wav"
    save_audio(clip, 0.1 * rng.standard_normal(4800).astype(np.float32), 16_000)   # 0.3 s → 30 frames
    return image, clip


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---------------------------------------------------------------------------
# missing and mismatched checkpoints
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("argv,stage,files", [
    (["chat", "hello", "--ckpt", "{d}"], "omni_sft", "config.json, model.safetensors, tokenizer.model"),
    (["chat", "hello", "--text-only", "--ckpt", "{d}"], "thinker", "config.json, model.safetensors, tokenizer.model"),
    (["asr", "{clip}", "--ckpt", "{d}"], "audio", "config.json, model.safetensors"),
    (["tts", "hello", "-o", "{d}/x.wav", "--talker", "{d}"], "talker",
     "config.json, model.safetensors, tokenizer.model"),
])
def test_missing_checkpoint_is_an_error_naming_folder_and_files(capsys, tmp_path, media, argv, stage, files):
    folder = tmp_path / "absent"
    argv = [a.format(d=folder, clip=media[1]) for a in argv]
    rc, out, err = run(capsys, *argv)
    assert rc == 1 and out == ""
    assert f"no {stage} checkpoint: {folder} does not exist" in err
    assert files in err and f"omni train {stage}" in err and "make demo" in err


def test_incomplete_checkpoint_lists_exactly_the_missing_files(capsys, tmp_path, exports):
    folder = tmp_path / "partial"
    folder.mkdir()
    shutil.copyfile(exports["thinker"] / "config.json", folder / "config.json")
    rc, _, err = run(capsys, "chat", "hi", "--text-only", "--ckpt", folder)
    assert rc == 1
    assert f"thinker checkpoint {folder} is incomplete: missing model.safetensors, tokenizer.model" in err
    with pytest.raises(MissingCheckpointError) as e:
        load_stage("thinker", folder)
    assert e.value.missing == ["model.safetensors", "tokenizer.model"]


def test_tts_names_the_missing_codec(capsys, tmp_path, exports):
    rc, _, err = run(capsys, "tts", "hello", "-o", tmp_path / "x.wav", "--talker", exports["talker"],
                     "--codec", tmp_path / "nocodec")
    assert rc == 1 and f"no codec checkpoint: {tmp_path / 'nocodec'}" in err and "--codec" in err
    assert not (tmp_path / "x.wav").exists()


def test_mismatched_config_and_weights_are_refused(capsys, tmp_path, exports):
    folder = tmp_path / "mismatch"
    shutil.copytree(exports["thinker"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["d_model"] = 64                                      # the weights are 32 wide
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        load_stage("thinker", folder)
    msg = str(e.value)
    assert str(folder) in msg and "does not match ThinkerLM" in msg
    assert "tok_emb.weight: checkpoint (320, 32) vs model (320, 64)" in msg
    rc, _, err = run(capsys, "chat", "hi", "--text-only", "--ckpt", folder)
    assert rc == 1 and "does not match ThinkerLM" in err

    cfg["d_model"] = 32
    cfg["n_experts"] = 4                                     # a key ThinkerConfig does not have
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not fit ThinkerConfig.*n_experts"):
        load_stage("thinker", folder)


def test_tokenizer_larger_than_the_model_vocabulary_is_refused(tmp_path, tokenizer):
    cfg = ThinkerConfig(**{**THINKER, "vocab_size": tokenizer.vocab_size - 1})
    folder = export(ThinkerLM(cfg), cfg, tmp_path / "small_vocab", tokenizer)
    with pytest.raises(CheckpointError, match=f"tokenizer.model has {tokenizer.vocab_size} pieces"):
        load_stage("thinker", folder)


def test_load_stage_gives_back_the_exported_weights(exports):
    loaded = load_stage("omni_sft", exports["omni_sft"])
    assert isinstance(loaded.model, OmniModel) and not loaded.model.training
    assert loaded.tokenizer is not None and loaded.config.thinker.d_model == 32
    codec = load_stage("codec", exports["codec"])
    assert codec.tokenizer is None
    from safetensors.torch import load_file
    saved = load_file(str(exports["codec"] / "model.safetensors"))
    for k, v in codec.model.state_dict().items():
        assert torch.equal(v, saved[k]), k


# ---------------------------------------------------------------------------
# the commands, end to end on tiny random checkpoints
# ---------------------------------------------------------------------------
def test_chat_with_image_and_audio_matches_the_pipeline(capsys, exports, media):
    image, clip = media
    rc, out, err = run(capsys, "chat", "what do you see and hear?", "--image", image, "--audio", clip,
                       "--ckpt", exports["omni_sft"], "--max-tokens", 6, "--temperature", 1.0, "--top-k", 20,
                       "--seed", 3, "--device", "cpu")
    assert rc == 0, err
    # no markers in the question: [BOS user:], then the image, the audio (0.3 s = 30 mel frames), the text
    from omni.models.audio_encoder import output_length
    assert f" + image 1 + audio {output_length(30)} + text " in err and "stopped by" in err

    from omni.audio.tiny_mel import log_mel_file
    from omni.images import load_image
    loaded = load_stage("omni_sft", exports["omni_sft"])
    want = chat_module.chat(loaded.model, loaded.tokenizer, "what do you see and hear?",
                            images=[load_image(image, size=64)],
                            mels=[log_mel_file(clip)[0]], sampling=SamplingConfig(1.0, 20, None, 6), seed=3)
    assert out == want.text + "\n"
    assert f"{len(want.ids)} tokens, stopped by {want.stop_reason}" in err


def test_chat_fast_decode_is_announced_and_answers_as_eager(capsys, exports, media):
    image, clip = media
    args = ["chat", "what do you see?", "--image", image, "--audio", clip, "--ckpt", exports["omni_sft"],
            "--max-tokens", 8, "--greedy", "--device", "cpu"]
    rc, eager, _ = run(capsys, *args)
    assert rc == 0
    rc, fast, err = run(capsys, *args, "--fast-decode")
    assert rc == 0, err
    assert err.startswith("[fast-decode] omni chat") and fast == eager


def test_chat_conversation_of_two_questions_matches_converse(capsys, exports, media):
    image, clip = media
    questions = ["<image>\nwhat colour is the star?", "<audio>\nis it loud or quiet?"]
    rc, out, err = run(capsys, "chat", *questions, "--image", image, "--audio", clip, "--ckpt", exports["omni_sft"],
                       "--max-tokens", 4, "--greedy", "--device", "cpu")
    assert rc == 0, err
    from omni.audio.tiny_mel import log_mel_file
    from omni.images import load_image
    loaded = load_stage("omni_sft", exports["omni_sft"])
    want = chat_module.converse(loaded.model, loaded.tokenizer, questions, images=[load_image(image, size=64)],
                                mels=[log_mel_file(clip)[0]], sampling=SamplingConfig(0.0, None, None, 4))
    assert out == f"> {questions[0]}\n{want[0].text}\n> {questions[1]}\n{want[1].text}\n"
    assert "[chat] turn 1: " in err and "[chat] turn 2: " in err
    assert want[1].layout.count("image") == 1 and want[1].layout.count("audio") == 1   # turn 2 sees both media
    rc, _, err = run(capsys, "chat", "what colour?", "<image> and?", "--image", image, "--image", image,
                     "--ckpt", exports["omni_sft"])
    assert rc == 1 and "each question places its own media with markers" in err


def test_chat_marker_count_must_match_the_media(capsys, exports, media):
    rc, _, err = run(capsys, "chat", "<image> and <image>?", "--image", media[0], "--ckpt", exports["omni_sft"])
    assert rc == 1 and "2 <image> and 0 <audio> markers, but 1 images and 0 audio clips" in err


def test_text_only_chat_is_the_thinkers_greedy_continuation(capsys, exports, tokenizer):
    rc, out, err = run(capsys, "chat", "the red cat", "--text-only", "--ckpt", exports["thinker"], "--greedy",
                       "--max-tokens", 5)
    assert rc == 0, err
    thinker = load_stage("thinker", exports["thinker"]).model
    ref = generate(thinker, ids=torch.tensor([tokenizer.encode("the red cat")]),
                   sampling=SamplingConfig(max_new_tokens=5), eos_id=2, use_cache=False)   # the uncached reference
    ids = ref.tokens[0].tolist()
    assert out == tokenizer.decode(ids[:ids.index(2) + 1] if 2 in ids else ids) + "\n"
    rc, _, err = run(capsys, "chat", "hi", "--text-only", "--image", "x.png", "--ckpt", exports["thinker"])
    assert rc == 1 and "--text-only uses the Thinker alone" in err


def test_chat_streams_each_piece_while_generating(monkeypatch, exports, tokenizer):
    """on_text is called between the Thinker's forward passes, not once at the end."""
    monkeypatch.setattr(chat_module, "EOS_ID", -1)           # never stop early: 12 steps for sure
    thinker = load_stage("thinker", exports["thinker"]).model
    events: list[str] = []
    thinker.register_forward_hook(lambda *_: events.append("forward"))
    pieces: list[str] = []

    def on_text(piece):
        pieces.append(piece)
        events.append("text")

    result = chat_module.chat(thinker, tokenizer, "a small dog", sampling=SamplingConfig(1.0, None, None, 12),
                              seed=0, on_text=on_text)
    assert len(result.ids) == 12 and result.stop_reason == "max_new_tokens"
    assert "".join(pieces) == result.text and len(pieces) >= 3
    first_text, last_forward = events.index("text"), len(events) - 1 - events[::-1].index("forward")
    assert first_text < last_forward, f"text came only after generation: {events}"


def test_text_stream_holds_back_an_incomplete_character(tokenizer):
    ids = tokenizer.encode("é", add_bos=False)               # byte fallback: é = 2 byte pieces (plus "▁")
    assert len(ids) >= 2
    got: list[str] = []
    stream = chat_module.TextStream(tokenizer, got.append)
    for i in ids:
        stream(torch.tensor([i]))
    assert "".join(got) == tokenizer.decode(ids) and all("\ufffd" not in g for g in got)


def test_tts_writes_a_wav_of_the_printed_duration(capsys, tmp_path, exports):
    out_wav = tmp_path / "hello.wav"
    rc, out, err = run(capsys, "tts", "the red cat", "-o", out_wav, "--talker", exports["talker"],
                       "--codec", exports["codec"], "--device", "cpu")
    assert rc == 0, err
    wave, sr = sf.read(str(out_wav))
    assert sr == 16_000 and wave.ndim == 1 and np.abs(wave).max() > 0
    frames = wave.shape[0] // 1280 - 1                       # the start frame is decoded too
    assert 1 <= frames <= 6
    assert out.startswith(f"wrote {out_wav}: {wave.shape[0] / sr:.2f} s ({frames} frames, stopped by ")


@pytest.mark.parametrize("choice,with_export,announced", [
    (None, False, "[tts] vocoder: Griffin-Lim (no learned vocoder at {none}; `omni train vocoder` makes one)"),
    (None, True, "[tts] vocoder: learned, {vocoder} (its export exists)"),
    ("learned", True, "[tts] vocoder: learned, {vocoder} (--vocoder learned)"),
    ("griffin-lim", True, "[tts] vocoder: Griffin-Lim (--vocoder griffin-lim)"),
])
def test_tts_vocoder_choice_is_announced_on_the_first_line(capsys, tmp_path, exports, choice, with_export,
                                                           announced):
    """Default: the learned vocoder when its export exists, Griffin-Lim otherwise; either is said first,
    and both give Part 5's frames × 1280 samples."""
    none = tmp_path / "no-vocoder"
    folder = exports["vocoder"] if with_export else none
    out_wav = tmp_path / "v.wav"
    argv = ["tts", "the red cat", "-o", out_wav, "--talker", exports["talker"], "--codec", exports["codec"],
            "--vocoder-ckpt", folder, "--device", "cpu"] + (["--vocoder", choice] if choice else [])
    rc, out, err = run(capsys, *argv)
    assert rc == 0, err
    assert err.splitlines()[0] == announced.format(none=none, vocoder=exports["vocoder"])
    wave, sr = sf.read(str(out_wav))
    frames = int(out.split("(")[1].split()[0])                 # "(N frames, ..." : N generated frames
    assert wave.shape[0] == (frames + 1) * 1280                # + the decoded start frame


def test_tts_learned_vocoder_without_its_export_is_an_error(capsys, tmp_path, exports):
    rc, out, err = run(capsys, "tts", "hi", "-o", tmp_path / "x.wav", "--talker", exports["talker"],
                       "--codec", exports["codec"], "--vocoder", "learned", "--vocoder-ckpt",
                       tmp_path / "no-vocoder", "--device", "cpu")
    assert rc != 0 and not (tmp_path / "x.wav").exists()
    assert f"no vocoder checkpoint: {tmp_path / 'no-vocoder'} does not exist" in err and "--vocoder-ckpt" in err


def test_asr_transcribes_with_the_exported_model(capsys, tmp_path, media):
    torch.manual_seed(0)
    cfg = ASRConfig(encoder=AudioEncoderConfig(conv_channels=4, d_model=32, n_layers=1, n_heads=2,
                                                   ffn_hidden=64), vocab_size=98)
    model = ASRModel(cfg).eval()
    folder = export(model, cfg, tmp_path / "audio")
    rc, out, err = run(capsys, "asr", media[1], "--ckpt", folder, "--device", "cpu")
    assert rc == 0, err
    from omni.audio.tiny_mel import log_mel_file
    mel = log_mel_file(media[1])
    with torch.no_grad():
        want = model.transcribe(mel, torch.tensor([mel.shape[1]]))[0]
    assert out == want + "\n"


# ---------------------------------------------------------------------------
# omni mufun: local Hugging Face-layout folders only
# ---------------------------------------------------------------------------
def test_mufun_names_every_missing_file(capsys, tmp_path, media):
    whisper = tmp_path / "whisper"
    whisper.mkdir()
    (whisper / "config.json").write_text("{}")
    qwen = tmp_path / "qwen"
    qwen.mkdir()
    (qwen / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1.safetensors"}}))
    rc, out, err = run(capsys, "mufun", "what genre?", "--audio", media[1], "--whisper", whisper, "--qwen", qwen)
    assert rc == 1 and out == ""
    assert "never downloads" in err
    assert f"{whisper / 'model.safetensors'} (or model.safetensors.index.json with its shards)" in err
    assert f"{qwen / 'config.json'}" in err
    assert f"{qwen / 'model-1.safetensors'} (a shard named by model.safetensors.index.json)" in err
    assert f"{qwen / 'tokenizer.json'}" in err
    assert "--connector: not given" in err
    assert str(whisper / "config.json") not in err.replace("model.safetensors", "")   # present: not listed


def _write_tiny_mufun(folder):
    """Whisper (3 layers: feature layers 0-3), Qwen3 and connector in HF layouts, and a word tokenizer."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    from omni.mufun.blp import BLPConnector
    from omni.mufun.config import ConnectorConfig
    from omni.mufun.loading import qwen3_config_from_hf, save_connector, whisper_config_from_hf
    from omni.mufun.qwen3 import Qwen3LM
    from omni.mufun.whisper import HF_RENAMES, WhisperEncoder

    torch.manual_seed(0)
    w_cfg = {"model_type": "whisper", "num_mel_bins": 16, "d_model": 8, "encoder_layers": 3,
             "encoder_attention_heads": 2, "encoder_ffn_dim": 16, "max_source_positions": 1500}
    q_cfg = {"model_type": "qwen3", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "intermediate_size": 32,
             "rope_theta": 1e6, "rms_norm_eps": 1e-6, "max_position_embeddings": 4096, "tie_word_embeddings": True}
    whisper, qwen = folder / "whisper", folder / "qwen"
    for d, cfg in ((whisper, w_cfg), (qwen, q_cfg)):
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(cfg))
    w_state = {}
    for k, v in WhisperEncoder(whisper_config_from_hf(w_cfg)).state_dict().items():
        for old, new in HF_RENAMES.items():                  # ours → HF's names (bare encoder layout)
            k = k.replace(f".{new}", f".{old}")
        w_state[k] = v.contiguous()
    save_file(w_state, str(whisper / "model.safetensors"))
    q_state = {"model." + k: v for k, v in Qwen3LM(qwen3_config_from_hf(q_cfg)).state_dict().items()
               if k != "lm_head.weight"}
    save_file(q_state, str(qwen / "model.safetensors"))
    connector = save_connector(BLPConnector(ConnectorConfig(audio_dim=8, n_inputs=4, llm_dim=16)),
                               folder / "connector.safetensors")
    words = ["<|endoftext|>", "[UNK]", "what", "genre", "is", "this", "rock", "jazz", "slow", "fast"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(str(qwen / "tokenizer.json"))
    return whisper, qwen, connector


def test_mufun_answers_from_local_checkpoints(capsys, tmp_path):
    whisper, qwen, connector = _write_tiny_mufun(tmp_path)
    clip = tmp_path / "song.wav"
    t = np.arange(2 * 16_000) / 16_000
    save_audio(clip, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16_000)
    rc, out, err = run(capsys, "mufun", "what genre is this", "--audio", clip, "--segment", 0.5, 1.5,
                       "--whisper", whisper, "--qwen", qwen, "--connector", connector, "--max-tokens", 4,
                       "--greedy", "--device", "cpu", "--feature-layers", 0, 1, 2, 3, "--pool-stride", 25)
    assert rc == 0, err
    assert "1 chunk(s) × 60 = 60 audio tokens" in err and "stopped by" in err
    assert set(out.split()) <= {"what", "genre", "is", "this", "rock", "jazz", "slow", "fast", "[UNK]"}
    rc, _, err = run(capsys, "mufun", "what", "--audio", clip, "--segment", 1.0, 5.0, "--whisper", whisper,
                     "--qwen", qwen, "--connector", connector, "--device", "cpu", "--feature-layers", 0, 1, 2, 3)
    assert rc == 1 and "ends after the audio ends (2.000 s" in err


# ---------------------------------------------------------------------------
# infer/<name>.py: the same commands as scripts, from a checkout
# ---------------------------------------------------------------------------
def test_infer_scripts_run_from_a_checkout(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}          # no PYTHONPATH: the script finds omni itself
    for name in ("chat", "asr", "tts", "mufun"):
        done = subprocess.run([sys.executable, str(repo / "infer" / f"{name}.py"), "--help"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.startswith(f"usage: omni {name}"), done.stderr
    done = subprocess.run([sys.executable, str(repo / "infer" / "asr.py"), "clip.wav", "--ckpt", "nowhere"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no audio checkpoint: nowhere does not exist" in done.stderr


# ---------------------------------------------------------------------------
# --dtype: chat, asr and tts under CPU autocast
# ---------------------------------------------------------------------------
def linear_dtypes_during(fn):
    """Run fn(); return (its result, the set of dtypes every nn.Linear produced meanwhile)."""
    seen = set()

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Linear):
            seen.add(output.dtype)
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        return fn(), seen
    finally:
        handle.remove()


@pytest.mark.skipif(not torch.amp.autocast_mode.is_autocast_available("cpu"), reason="no CPU autocast")
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_inference_dtype_runs_chat_asr_and_tts_under_autocast(capsys, tmp_path, exports, media, dtype):
    image, clip = media
    want = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    torch.manual_seed(0)
    asr_cfg = ASRConfig(encoder=AudioEncoderConfig(conv_channels=4, d_model=32, n_layers=1, n_heads=2,
                                                   ffn_hidden=64), vocab_size=98)
    asr_dir = export(ASRModel(asr_cfg), asr_cfg, tmp_path / "audio")
    commands = {
        "chat": ["chat", "what do you see and hear?", "--image", image, "--audio", clip, "--ckpt",
                 exports["omni_sft"], "--max-tokens", 4, "--greedy"],
        "chat --text-only": ["chat", "the red cat", "--text-only", "--ckpt", exports["thinker"], "--greedy",
                             "--max-tokens", 4],
        "asr": ["asr", clip, "--ckpt", asr_dir],
        "tts": ["tts", "the red cat", "-o", tmp_path / "hi.wav", "--talker", exports["talker"], "--codec",
                exports["codec"]],
    }
    for name, argv in commands.items():
        (rc, out, err), seen = linear_dtypes_during(lambda: run(capsys, *argv, "--device", "cpu", "--dtype", dtype))
        assert rc == 0, (name, err)
        assert f"({dtype} autocast)" in err, (name, err)
        assert want in seen, f"{name}: no Linear ran in {want} (saw {seen})"
        assert out.strip(), name
        (rc, _, err), seen = linear_dtypes_during(lambda: run(capsys, *argv, "--device", "cpu", "--dtype", "fp32"))
        assert rc == 0 and "(fp32)" in err and seen == {torch.float32}, (name, err, seen)
    wave, sr = sf.read(str(tmp_path / "hi.wav"))
    assert sr == 16_000 and np.isfinite(wave).all() and np.abs(wave).max() > 0
