"""Data that works offline: the synthetic omni world and readers for real formats.

    grammar.py    a PCFG that samples, parses (LL(1)) and knows its entropy
    language.py   the world's words and grammar; text-only fact dialogues
    scenes.py     1–3 shapes → 224 × 224 PNG, captions, questions
    music.py      synthesized notes, chords, melodies, beats, captions, questions
    speech.py     espeak-ng through ctypes (reproducible per clip)
    synth.py      `omni data synth`: writes everything, splits by hash
    card.py       the dataset card (JSON + Markdown)
    manifest.py   typed records and JSONL manifests (read_manifest)
    quality.py    bad-data checks, reports, the CTC length rule (load_checked)
    adapters.py   plain text, ASR CSV/JSONL, LibriSpeech, COCO, caption JSONL, MuFun JSON

See docs/data.md for the manifest schemas.
"""
