import os

import pytest
import torch

# Keep the two-core CI machine responsive and results repeatable.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (no GPU on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A small English text file for tokenizer tests (written, not downloaded)."""
    import random

    rng = random.Random(0)
    subjects = ["the cat", "a dog", "my friend", "the red circle", "a small square", "the teacher", "you", "we"]
    verbs = ["sees", "likes", "draws", "hears", "plays with", "asks about", "finds", "moves"]
    objects = ["a blue star", "the music", "a green triangle", "the piano", "a loud drum", "the big picture"]
    extras = ["Hello, how are you?", "I am fine, thank you.", "What do you see in this image?",
              "This is a test of text to speech.", "What did you hear?"]
    lines = []
    for _ in range(3000):
        s = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}."
        lines.append(s[0].upper() + s[1:])
        if rng.random() < 0.2:
            lines.append(rng.choice(extras))
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_corpus, tmp_path_factory):
    from omni.tokenizer import BPETokenizer

    return BPETokenizer.train(tiny_corpus, tmp_path_factory.mktemp("tok") / "tokenizer.model", vocab_size=400)
