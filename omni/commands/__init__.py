"""Subcommand bodies too long for omni/cli.py, which keeps only the argparse wiring.

    infer.py    omni chat, omni asr, omni tts, omni mufun
    eval.py     omni eval <stage> | all
"""
